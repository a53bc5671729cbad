package web_test

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/creditd/creditd/httpapi"
)

// adminPost sends a JSON body to the API with the admin key and returns
// the status.
func (e *env) adminPost(path, body string) int {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer sk_admin")
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// advanceSeconds moves the test clock through the API, which sweeps
// before it answers.
func (e *env) advanceSeconds(n int) {
	e.t.Helper()
	if st := e.adminPost("/v1/test-clock", `{"advance_seconds": `+strconv.Itoa(n)+`}`); st != 200 {
		e.t.Fatalf("advance: %d", st)
	}
}

// The Create page shows actions that no worker serves right now as
// unavailable (item 4 of issue 20: Create offered Generate with no worker
// running, and the job then held its credits for a day), and a job page
// says why a job without a worker ended.
func TestCreateShowsActionsWithoutWorkerUnavailable(t *testing.T) {
	eachStore(t, func(t *testing.T, mk func(t *testing.T, opts ...func(*httpapi.Server)) *env) {
		e := mk(t)
		e.account("alice")
		u := e.signIn("alice")
		disabled := func(action string) *regexp.Regexp {
			return regexp.MustCompile(`name="action" value="` + action + `"( checked)? disabled`)
		}
		startDisabled := regexp.MustCompile(`<button type="submit" class="btn primary big" disabled`)

		// No worker: Generate (and every other action) is unavailable.
		p := must(t, u.get("/app/create?action=generate"), 200, "Unavailable right now", "No worker is available for Generate right now")
		if !disabled("generate").MatchString(p.body) || !disabled("crop").MatchString(p.body) || !startDisabled.MatchString(p.body) {
			t.Fatalf("without a worker, generate and crop should be disabled and Start too:\n%s", p.body)
		}

		// A worker polls for generate: Generate is available, crop not.
		if st := e.adminPost("/v1/worker/lease", `{"actions": ["generate"]}`); st != http.StatusNoContent {
			t.Fatalf("lease: %d", st)
		}
		p = must(t, u.get("/app/create?action=generate"), 200, "Start Generate")
		if disabled("generate").MatchString(p.body) || startDisabled.MatchString(p.body) || strings.Contains(p.body, "No worker is available") {
			t.Fatalf("with a worker polling for generate, Generate should be available:\n%s", p.body)
		}
		if !disabled("crop").MatchString(p.body) {
			t.Fatalf("crop has no worker but is offered:\n%s", p.body)
		}

		// A lease period later without another poll, it is unavailable again.
		e.advanceSeconds(30)
		if p = u.get("/app/create?action=generate"); !disabled("generate").MatchString(p.body) {
			t.Fatalf("generate still offered a lease period after its worker's last poll:\n%s", p.body)
		}

		// A job started anyway says why it waits, then why it ended.
		p = u.post("/app/jobs", url.Values{"action": {"generate"}, "prompt": {"a fox"}, "quantity": {"1"}})
		if p.posted == nil || p.posted.status != http.StatusSeeOther {
			t.Fatalf("start: %d %s", p.status, p.body)
		}
		job := p.location
		must(t, u.get(job), 200, "No worker is available for Generate right now. If none takes this job within 10 min")
		e.advanceSeconds(600)
		must(t, u.get(job), 200, "No worker is available for Generate right now; you were not charged.")
	})
}
