package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// TestPostRedirectGet reproduces issue 20 (a refused start left the
// browser on /app/jobs, a 404 on reload): every form is answered with a
// 303 to a GET page (the test client refuses anything else, see submit),
// the page shows why once with the refusal's status, keeps what was typed,
// and reloading it works.
func TestPostRedirectGet(t *testing.T) {
	e := newEnv(t)
	e.account("carol")
	u := e.signIn("carol")
	src := u.uploaded(pngImage(16, 8))

	t.Run("RefusedStartGoesBackToTheForm", func(t *testing.T) {
		ctx := context.Background()
		v, err := e.eng.Reserve(ctx, engine.ReserveParams{AccountID: "carol", ReserveParams: ledger.ReserveParams{Action: "generate", Quantity: e.available("carol") / 5}})
		if err != nil {
			t.Fatal(err)
		}
		p := must(t, u.post("/app/jobs", url.Values{"action": {"generate"}, "prompt": {"a quiet harbour"}, "quantity": {"2"}, "idem": {"k1"}}),
			http.StatusPaymentRequired, "You don&#39;t have enough credits for this: it costs 10.", "a quiet harbour")
		if !strings.HasPrefix(p.location, "/app/create?") || strings.Contains(p.location, "csrf") || strings.Contains(p.location, "idem") {
			t.Fatalf("refused start redirected to %q, want the Create page without the token or key", p.location)
		}
		again := must(t, u.get(p.location), http.StatusOK, "a quiet harbour")
		if strings.Contains(again.body, "enough credits for this") {
			t.Fatalf("the message shows again on reload")
		}
		if _, err := e.eng.Release(ctx, engine.HoldParams{HoldID: v.Value.ID, Reason: "cancelled"}); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("NoOpEditIsExplainedAndFree", func(t *testing.T) {
		before := e.available("carol")
		form := url.Values{"action": {"adjust"}, "source": {src}, "brightness": {"0"}, "contrast": {"0"}, "saturation": {"0"}, "gamma": {"1"}}
		p := must(t, u.post("/app/jobs", form), http.StatusBadRequest, "leave the image unchanged", "Start Adjust")
		if !strings.Contains(p.location, "source="+src) {
			t.Fatalf("redirected to %q, want the form with its image", p.location)
		}
		crop := url.Values{"action": {"crop"}, "source": {src}, "x": {"0"}, "y": {"0"}, "width": {"16"}, "height": {"8"}}
		must(t, u.post("/app/jobs", crop), http.StatusBadRequest, "is the whole 16x8 image", `id="p-width" name="width" type="number" value="16"`)
		if got := e.available("carol"); got != before {
			t.Fatalf("available %d after refused edits, want %d", got, before)
		}
	})

	t.Run("RefusedChangeKeepsTheValues", func(t *testing.T) {
		started := u.post("/app/jobs", url.Values{"action": {"crop"}, "source": {src}, "x": {"1"}, "y": {"0"}, "width": {"4"}, "height": {"4"}})
		job := started.location
		if !strings.HasPrefix(job, "/app/jobs/") {
			t.Fatalf("start: %d %s\n%s", started.status, job, started.body)
		}
		p := must(t, u.post(job+"/params", url.Values{"x": {"0"}, "y": {"0"}, "width": {"99"}, "height": {"4"}}),
			http.StatusBadRequest, "not inside the 16x8 image", `id="c-width" name="width" type="number" value="99"`)
		if !strings.HasPrefix(p.location, job+"?") {
			t.Fatalf("refused change redirected to %q", p.location)
		}
		must(t, u.get(job), http.StatusOK, `id="c-width" name="width" type="number" value="4"`)
		u.post(job+"/cancel", url.Values{})
		must(t, u.post(job+"/cancel", url.Values{}), http.StatusOK, "Cancelled")
	})

	t.Run("MessagePageLastsUntilItExpires", func(t *testing.T) {
		v := e.signIn("carol")
		p := must(t, v.post("/app/logout", url.Values{}), http.StatusOK, "You are signed out")
		if p.location != "/app/message" {
			t.Fatalf("sign-out redirected to %q", p.location)
		}
		must(t, v.get("/app/message"), http.StatusOK, "You are signed out")
		e.clock.Advance(6 * time.Minute)
		must(t, v.get("/app/message"), http.StatusOK, "Nothing to show here", `href="/app/create"`)
	})

	t.Run("ForgedFlashIsIgnored", func(t *testing.T) {
		w := e.newUser()
		base, _ := url.Parse(e.url + "/app/")
		for _, value := range []string{
			"eyJleHAiOjk5OTk5OTk5OTksInN0YXR1cyI6MjAwLCJlcnJvciI6IkZvcmdlZCJ9.bad",
			"eyJleHAiOjk5OTk5OTk5OTksInN0YXR1cyI6MjAwLCJlcnJvciI6IkZvcmdlZCJ9",
		} {
			w.c.Jar.SetCookies(base, []*http.Cookie{{Name: "creditd_flash", Value: value, Path: "/app"}})
			must(t, w.get("/app/message"), http.StatusOK, "Nothing to show here")
		}
	})
}
