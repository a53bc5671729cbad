package e2e

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/pgtest"
)

// startNode starts a creditd process on PostgreSQL with the real clock.
func startNode(t *testing.T, dsn string, extra ...string) *server {
	t.Helper()
	return launch(t, append([]string{"--db", dsn, "--builtin-worker", "0"}, extra...), "CREDITD_SESSION_SECRET=e2e-shared-secret")
}

// TestMultiNode runs three creditd processes on one PostgreSQL database and
// drives concurrent charge cycles through all three.
func TestMultiNode(t *testing.T) {
	dsn := pgtest.DSN(t)
	// Short leases so that lease loss happens within the test on the real clock.
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(`{"limits": {"job_lease_seconds": 1, "job_hold_grace_seconds": 1}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	nodes := []*server{startNode(t, dsn, "--config", cfg), startNode(t, dsn, "--config", cfg), startNode(t, dsn, "--config", cfg)}
	a := nodes[0]
	a.admin(201, "PUT", "/v1/accounts/team", map[string]any{"plan": "paid"})
	a.admin(201, "POST", "/v1/accounts/team/grants", map[string]any{"amount": 970, "source": "admin"})
	// 30 signup + 970 admin = 1000 credits: room for 200 images, and 300 are attempted.
	nodes[1].wantBalance("team", 1000, 0)

	t.Run("EventCrossesNodes", func(t *testing.T) {
		req, _ := http.NewRequest("GET", nodes[2].url+"/v1/accounts/team/events", nil)
		req.Header.Set("Authorization", "Bearer "+adminKey)
		res, err := apiClient(t).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("events: %d", res.StatusCode)
		}
		lines := make(chan string, 64)
		go func() {
			sc := bufio.NewScanner(res.Body)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// A grant committed through node 0 shows up on node 2's stream.
		nodes[0].admin(201, "POST", "/v1/accounts/team/grants", map[string]any{"amount": 1, "source": "admin", "reference": "cross-node"})
		deadline := time.After(15 * time.Second)
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatal("stream ended")
				}
				if strings.HasPrefix(l, "data:") && strings.Contains(l, `"available":1001`) {
					return
				}
			case <-deadline:
				t.Fatal("no balance event with the new balance on the other node")
			}
		}
	})

	t.Run("JobCrossesNodes", func(t *testing.T) {
		a.admin(201, "PUT", "/v1/accounts/jobs", map[string]any{})
		j := a.createJob("jobs", "generate", 1, map[string]any{"prompt": "x"})
		id := j.str("id")
		// Leased through node 1; the worker dies: a sweep on some node requeues it.
		l := nodes[1].worker(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}, "wait_seconds": 5})
		if l.body["job"].(map[string]any)["id"] != id {
			t.Fatalf("leased %s", l.raw)
		}
		nodes[2].waitJob(id, "requeued", func(r resp) bool { return r.str("status") == "queued" && r.num("attempts") == 1 })
		// Leased again through node 2, heartbeaten through node 0, output
		// uploaded and completed through node 1.
		l = nodes[2].worker(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}, "wait_seconds": 5})
		lease := l.str("lease_id")
		// The params did not change: a node that did not lease the job
		// must not say they did (the worker would restart for nothing).
		if hb := nodes[0].worker(200, "POST", "/v1/worker/jobs/"+id+"/heartbeat", map[string]any{"lease_id": lease}); hb.body["changed"] != false {
			t.Fatalf("heartbeat through another node: %s", hb.raw)
		}
		out := nodes[1].uploadOutput(id, lease)
		// Completed through a node that neither leased nor heartbeat it.
		done := nodes[1].worker(200, "POST", "/v1/worker/jobs/"+id+"/complete", map[string]any{"lease_id": lease, "outputs": []string{out}})
		if done.num("charged") != 5 {
			t.Fatalf("%s", done.raw)
		}
		nodes[2].wantBalance("jobs", 40, 0)
		if r := nodes[2].req(adminKey, "GET", "/v1/assets/"+out, nil, ""); r.status != 200 {
			t.Fatalf("asset from another node: %d", r.status)
		}
	})

	t.Run("SignInLinkCrossesNodes", func(t *testing.T) {
		a.admin(201, "PUT", "/v1/accounts/li", map[string]any{})
		link, _ := url.Parse(a.loginLink("li"))
		on := func(n *server) string { return n.url + link.Path + "?" + link.RawQuery }
		noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		status := func(res *http.Response, err error) int {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			return res.StatusCode
		}
		// Opened on one node, continued on another, used up on the third.
		if st := status(noRedirect.Get(on(nodes[1]))); st != 200 {
			t.Fatalf("open: %d", st)
		}
		if st := status(noRedirect.PostForm(nodes[2].url+"/app/login", url.Values{"token": {link.Query().Get("token")}})); st != http.StatusSeeOther {
			t.Fatalf("continue: %d", st)
		}
		if st := status(noRedirect.Get(on(nodes[0]))); st != http.StatusGone {
			t.Fatalf("open after use on another node: %d", st)
		}
		// The refusal is a 303 to the message page (post/redirect/get), which says 410.
		if st := status(cookieClient(t).PostForm(nodes[0].url+"/app/login", url.Values{"token": {link.Query().Get("token")}})); st != http.StatusGone {
			t.Fatalf("continue again on another node: %d", st)
		}
	})

	t.Run("CancelCrossesNodes", func(t *testing.T) {
		a.admin(201, "PUT", "/v1/accounts/cx", map[string]any{})
		id := a.createJob("cx", "generate", 2, map[string]any{"prompt": "y"}).str("id")
		l := nodes[2].worker(200, "POST", "/v1/worker/lease", map[string]any{"actions": []string{"generate"}, "wait_seconds": 5})
		if l.body["job"].(map[string]any)["id"] != id {
			t.Fatalf("leased %s", l.raw)
		}
		lease := l.str("lease_id")
		out := nodes[1].uploadOutput(id, lease)
		nodes[0].admin(200, "POST", "/v1/jobs/"+id+"/cancel", map[string]any{})
		// The worker hears it through another node, and cannot complete.
		if hb := nodes[1].worker(200, "POST", "/v1/worker/jobs/"+id+"/heartbeat", map[string]any{"lease_id": lease}); hb.body["cancelled"] != true {
			t.Fatalf("heartbeat after a cancel on another node: %s", hb.raw)
		}
		nodes[1].worker(409, "POST", "/v1/worker/jobs/"+id+"/complete", map[string]any{"lease_id": lease, "outputs": []string{out}})
		nodes[2].wantBalance("cx", 45, 0)
	})

	t.Run("SessionsEndAcrossNodes", func(t *testing.T) {
		a.admin(201, "PUT", "/v1/accounts/so", map[string]any{})
		signIn := func(via *server) *http.Client {
			t.Helper()
			c := cookieClient(t)
			c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
			link, _ := url.Parse(nodes[0].loginLink("so"))
			res, err := c.PostForm(via.url+"/app/login", url.Values{"token": {link.Query().Get("token")}})
			if err != nil || res.StatusCode != http.StatusSeeOther {
				t.Fatalf("sign in: %v %v", res, err)
			}
			res.Body.Close()
			return c
		}
		page := func(c *http.Client, via *server, path string) (int, string) {
			t.Helper()
			res, err := c.Get(via.url + path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			b, _ := io.ReadAll(res.Body)
			return res.StatusCode, string(b)
		}
		// Cookies are per host, not per port: every node gets them.
		s1, s2 := signIn(nodes[0]), signIn(nodes[1])
		tok := nodes[0].userToken("so")
		for _, n := range nodes {
			if st, _ := page(s1, n, "/app/create"); st != 200 {
				t.Fatalf("session on node %s: %d", n.url, st)
			}
		}

		// Sign out through node 1: the cookie, replayed, fails on node 2.
		_, body := page(s1, nodes[1], "/app/settings/account/profile")
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no CSRF token on the profile page:\n%s", body)
		}
		base, _ := url.Parse(nodes[1].url + "/app/")
		old := s1.Jar.Cookies(base)
		res, err := s1.PostForm(nodes[1].url+"/app/logout", url.Values{"csrf": {html.UnescapeString(m[1])}})
		if err != nil || res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/app/message" {
			t.Fatalf("sign out: %v %v, want a 303 to the message page", res, err)
		}
		res.Body.Close()
		s1.Jar.SetCookies(base, old)
		if st, _ := page(s1, nodes[2], "/app/create"); st != http.StatusUnauthorized {
			t.Fatalf("signed-out cookie on another node: %d", st)
		}
		if st, _ := page(s2, nodes[2], "/app/create"); st != 200 {
			t.Fatalf("the other session on node 2: %d", st)
		}

		// Sign out everywhere through node 0's admin API: node 1 and 2
		// refuse the session and the token at once; new ones work.
		a.admin(200, "POST", "/v1/accounts/so/revoke-sessions", map[string]any{})
		if st, _ := page(s2, nodes[1], "/app/create"); st != http.StatusUnauthorized {
			t.Fatalf("session after revoke-sessions on another node: %d", st)
		}
		if r := nodes[2].req(tok, "GET", "/v1/accounts/so/balance", nil, ""); r.status != http.StatusUnauthorized {
			t.Fatalf("token after revoke-sessions on another node: %d %s", r.status, r.raw)
		}
		if r := nodes[0].req(nodes[2].userToken("so"), "GET", "/v1/accounts/so/balance", nil, ""); r.status != 200 {
			t.Fatalf("new token: %d %s", r.status, r.raw)
		}
		if st, _ := page(signIn(nodes[2]), nodes[0], "/app/create"); st != 200 {
			t.Fatalf("new session: %d", st)
		}
	})

	const workers, perWorker = 30, 10
	var reserved, captured, released, refused atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 7))
			for i := range perWorker {
				via := nodes[r.IntN(3)]
				key := fmt.Sprintf("w%d-%d", w, i)
				h := via.req(adminKey, "POST", "/v1/holds", map[string]any{"account_id": "team", "action": "generate"}, "application/json")
				switch h.status {
				case 402:
					refused.Add(1)
					continue
				case 201:
					reserved.Add(1)
				default:
					errs <- fmt.Errorf("reserve %s: %d %s", key, h.status, h.raw)
					continue
				}
				// Resolve through another node than the one that reserved.
				other := nodes[(r.IntN(2)+1+indexOf(nodes, via))%3]
				if r.IntN(4) == 0 {
					if c := other.req(adminKey, "POST", "/v1/holds/"+h.str("id")+"/release", map[string]any{"reason": "failed"}, "application/json"); c.status != 200 {
						errs <- fmt.Errorf("release: %d %s", c.status, c.raw)
					}
					released.Add(1)
				} else {
					if c := other.req(adminKey, "POST", "/v1/holds/"+h.str("id")+"/capture", map[string]any{"quantity": 1}, "application/json"); c.status != 200 {
						errs <- fmt.Errorf("capture: %d %s", c.status, c.raw)
					}
					captured.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("reserved %d (captured %d, released %d), refused %d", reserved.Load(), captured.Load(), released.Load(), refused.Load())
	if reserved.Load()+refused.Load() != workers*perWorker {
		t.Fatal("lost requests")
	}
	want := 1001 - 5*captured.Load()
	for _, n := range nodes {
		n.wantBalance("team", want, 0)
	}
	if want < 0 {
		t.Fatal("overspent")
	}
	// The ledger charged exactly the acknowledged captures, once each.
	var charged int64
	r := a.admin(200, "GET", "/v1/accounts/team/entries?limit=500", nil)
	for {
		for _, d := range r.body["data"].([]any) {
			m := d.(map[string]any)
			if m["type"] == "capture" {
				charged += int64(m["amount"].(float64))
			}
		}
		if r.body["has_more"] != true {
			break
		}
		r = a.admin(200, "GET", "/v1/accounts/team/entries?limit=500&cursor="+r.str("next_cursor"), nil)
	}
	if charged != 5*captured.Load() {
		t.Fatalf("ledger charged %d, acknowledged captures %d", charged, 5*captured.Load())
	}
	verifyPG(t, dsn)
}

func indexOf(nodes []*server, s *server) int {
	for i, n := range nodes {
		if n == s {
			return i
		}
	}
	return 0
}
