package web_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"
)

// call sends a JSON request to the API with the admin key (which may use
// the worker routes) and returns the status and the decoded body.
func (e *env) call(method, path string, body any, ctype string) (int, map[string]any) {
	e.t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		r, ctype = bytes.NewReader(j), "application/json"
	}
	req, _ := http.NewRequest(method, e.url+path, r)
	req.Header.Set("Authorization", "Bearer sk_admin")
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	out := map[string]any{}
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out
}

func (e *env) mustCall(status int, method, path string, body any, ctype string) map[string]any {
	e.t.Helper()
	got, out := e.call(method, path, body, ctype)
	if got != status {
		e.t.Fatalf("%s %s: %d %v, want %d", method, path, got, out, status)
	}
	return out
}

// startGenerate starts a generate job of quantity images for an account.
func (e *env) startGenerate(account string, quantity int) string {
	e.t.Helper()
	return e.mustCall(201, "POST", "/v1/jobs", map[string]any{"account_id": account, "action": "generate", "quantity": quantity, "params": map[string]any{"prompt": "a fox"}}, "")["id"].(string)
}

// lease leases the one queued generate job, which must be id.
func (e *env) lease(id string) string {
	e.t.Helper()
	out := e.mustCall(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}}, "")
	if job, _ := out["job"].(map[string]any); job["id"] != id {
		e.t.Fatalf("leased %v, want %s", out["job"], id)
	}
	return out["lease_id"].(string)
}

// deliver uploads n outputs for a leased job and completes it with them.
func (e *env) deliver(id, lease string, n int) {
	e.t.Helper()
	var outs []string
	for range n {
		outs = append(outs, e.mustCall(201, "POST", "/v1/worker/jobs/"+id+"/outputs?lease_id="+lease, pngImage(4, 4), "image/png")["id"].(string))
	}
	e.mustCall(200, "POST", "/v1/worker/jobs/"+id+"/complete", map[string]any{"lease_id": lease, "outputs": outs}, "")
}

var stepRE = regexp.MustCompile(`data-step="(\w+)" data-state="(\w+)"`)

// steps reads a job page's timeline: "queued:done working:current end:pending".
func steps(body string) string {
	var out []string
	for _, m := range stepRE.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1]+":"+m[2])
	}
	return strings.Join(out, " ")
}

// TestJobTimeline reproduces issue 20 (a job cancelled while queued showed
// "2. Working" as reached and "Cancelled. You were not charged." twice):
// the job page's timeline and its one outcome sentence for every way a job
// can be or end.
func TestJobTimeline(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	u := e.signIn("alice")
	jobs := map[string]string{}

	// Interrupted while waiting: no worker took it before its hold expired.
	jobs["interrupted"] = e.startGenerate("alice", 1)
	e.clock.Advance(time.Duration(e.eng.Config().Limits.JobQueueSecondsMax+1) * time.Second)
	if st := e.mustCall(200, "GET", "/v1/jobs/"+jobs["interrupted"], nil, "")["status"]; st != "interrupted" {
		t.Fatalf("waiting job after its hold expired: %v", st)
	}
	jobs["succeeded"] = e.startGenerate("alice", 1)
	e.deliver(jobs["succeeded"], e.lease(jobs["succeeded"]), 1)
	jobs["partial"] = e.startGenerate("alice", 4)
	e.deliver(jobs["partial"], e.lease(jobs["partial"]), 3)
	jobs["failed"] = e.startGenerate("alice", 1)
	e.mustCall(200, "POST", "/v1/worker/jobs/"+jobs["failed"]+"/fail", map[string]any{"lease_id": e.lease(jobs["failed"]), "error": "the model is down"}, "")
	jobs["cancelled-running"] = e.startGenerate("alice", 1)
	e.lease(jobs["cancelled-running"])
	u.post("/app/jobs/"+jobs["cancelled-running"]+"/cancel", url.Values{})
	jobs["cancelled-queued"] = e.startGenerate("alice", 1)
	cancelled := u.post("/app/jobs/"+jobs["cancelled-queued"]+"/cancel", url.Values{})
	jobs["running"] = e.startGenerate("alice", 1)
	e.lease(jobs["running"])
	jobs["queued"] = e.startGenerate("alice", 1)

	for _, tc := range []struct {
		job, steps, outcome string
	}{
		{"queued", "queued:current working:pending end:pending", ""},
		{"running", "queued:done working:current end:pending", ""},
		{"succeeded", "queued:done working:done end:current", ""},
		{"partial", "queued:done working:done end:current", "Delivered 3 of 4. You were charged 15 credits for what you got; the 5 credits reserved for the 1 result not delivered came back to you."},
		{"failed", "queued:done working:done end:current", "This didn&#39;t work: the model is down. You were not charged."},
		{"cancelled-queued", "queued:done working:skipped end:current", "Cancelled before it started. You were not charged."},
		{"cancelled-running", "queued:done working:done end:current", "Cancelled while it was being made. You were not charged"},
		{"interrupted", "queued:done working:skipped end:current", "This was stopped before anyone started it. You were not charged; try again."},
	} {
		t.Run(tc.job, func(t *testing.T) {
			p := must(t, u.get("/app/jobs/"+jobs[tc.job]), http.StatusOK)
			if got := steps(p.body); got != tc.steps {
				t.Errorf("timeline %q, want %q", got, tc.steps)
			}
			if tc.outcome == "" {
				if strings.Contains(p.body, "data-outcome") {
					t.Errorf("an outcome sentence on a %s job", tc.job)
				}
			} else if !strings.Contains(p.body, tc.outcome) {
				t.Errorf("page lacks %q", tc.outcome)
			}
			if n := strings.Count(p.body, "not charged"); n > 1 {
				t.Errorf(`"not charged" %d times on the page, want it once at most`, n)
			}
		})
	}
	t.Run("PartialDeliverySaysWhatCameBack", func(t *testing.T) {
		must(t, u.get("/app/jobs/"+jobs["partial"]), 200, "<dt>Charged</dt><dd>15 credits</dd>", "<dt>Returned</dt><dd data-returned>5 credits</dd>")
		if p := u.get("/app/jobs/" + jobs["succeeded"]); strings.Contains(p.body, "data-returned") {
			t.Errorf("a full delivery shows credits returned")
		}
	})
	t.Run("EndLabels", func(t *testing.T) {
		must(t, u.get("/app/jobs/"+jobs["partial"]), 200, `aria-current="step">Delivered 3 of 4<`)
		must(t, u.get("/app/jobs/"+jobs["cancelled-queued"]), 200, `aria-current="step">Cancelled<`, `Working<span class="sr-only"> (skipped)</span>`)
		must(t, u.get("/app/jobs/"+jobs["succeeded"]), 200, `aria-current="step">Done<`)
	})
	t.Run("CancelSaysItOnce", func(t *testing.T) {
		if cancelled.location != "/app/jobs/"+jobs["cancelled-queued"] {
			t.Fatalf("cancel redirected to %s", cancelled.location)
		}
		if n := strings.Count(cancelled.body, "You were not charged"); n != 1 || strings.Contains(cancelled.body, `class="notice" role="status"`) {
			t.Fatalf("after cancel: %q %d times, or a notice besides the outcome", "You were not charged", n)
		}
	})
}

var historyRowRE = regexp.MustCompile(`(?s)<tr>\s*<td class="date">.*?</tr>`)

// historyRows reads the Billing history's rows as "title | detail | change".
func historyRows(body string) []string {
	tag := regexp.MustCompile(`<[^>]+>`)
	var out []string
	for _, row := range historyRowRE.FindAllString(body, -1) {
		cells := regexp.MustCompile(`(?s)<td[^>]*>(.*?)</td>`).FindAllStringSubmatch(row, -1)
		if len(cells) != 3 {
			continue
		}
		act := strings.Replace(cells[1][1], `</span><span class="muted">`, " | ", 1)
		act = strings.TrimSpace(strings.ReplaceAll(tag.ReplaceAllString(act, ""), " View", ""))
		out = append(out, act+" | "+strings.TrimSpace(tag.ReplaceAllString(cells[2][1], "")))
	}
	return out
}

// TestHistoryOneRowPerJob reproduces issue 20 (history showed two rows per
// job): a job is one row, from its start to how it ended, with what it
// cost in the end; a job still running shows what it holds; a job whose
// start is on an older page than its end is shown once, on the newer.
func TestHistoryOneRowPerJob(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	u := e.signIn("alice")
	partial := e.startGenerate("alice", 4)
	e.deliver(partial, e.lease(partial), 3)
	cancelled := e.startGenerate("alice", 1)
	u.post("/app/jobs/"+cancelled+"/cancel", url.Values{})
	running := e.startGenerate("alice", 1)
	e.lease(running)

	rows := historyRows(must(t, u.get("/app/settings/account/billing"), http.StatusOK).body)
	want := []string{
		"Generate started | 5 credits reserved while it runs | −5",
		"Generate cancelled | Nothing charged: the 5 credits reserved came back | ±0",
		"Generate: 3 of 4 results delivered | 20 reserved, 15 charged, 5 returned for results not delivered | −15",
	}
	if len(rows) < len(want) || strings.Join(rows[:len(want)], "\n") != strings.Join(want, "\n") {
		t.Fatalf("history rows:\n%s\nwant first:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	if n := strings.Count(strings.Join(rows, "\n"), "Generate"); n != 3 {
		t.Errorf("%d rows for 3 jobs:\n%s", n, strings.Join(rows, "\n"))
	}

	t.Run("StartAndEndOnDifferentPages", func(t *testing.T) {
		e := newEnv(t)
		e.account("bob")
		u := e.signIn("bob")
		job := e.startGenerate("bob", 1)
		for range 25 {
			e.mustCall(201, "POST", "/v1/accounts/bob/grants", map[string]any{"amount": 1, "source": "promo"}, "")
		}
		e.deliver(job, e.lease(job), 1)
		var all []string
		for path := "/app/settings/account/billing"; path != ""; {
			p := must(t, u.get(path), http.StatusOK)
			all = append(all, historyRows(p.body)...)
			path = ""
			if m := regexp.MustCompile(`href="(/app/settings/account/billing\?cursor=\d+)#history-h"`).FindStringSubmatch(p.body); m != nil {
				path = m[1]
			}
		}
		joined := strings.Join(all, "\n")
		if strings.Count(joined, "Generate") != 1 || !strings.Contains(joined, "Generate: 1 result delivered | 5 charged | −5") {
			t.Fatalf("rows across pages:\n%s", joined)
		}
	})
}
