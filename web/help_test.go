package web_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite"
)

const helpPath = "/app/help/credits-and-usage"

// newEnvWithConfig is newEnv (SQLite) with a configuration of the test's.
func newEnvWithConfig(t *testing.T, cfg *ledger.Config) *env {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	return newEnvConfigOn(t, st, cfg)
}

// The article reads every number from the configuration: with daily 20,
// sign-up 50, images at 6 and video at 70 paid by purchases only, it says
// so, and none of the defaults (15, 30, 5, 60) appear.
func TestHelpArticleNumbersFromConfig(t *testing.T) {
	cfg := ledger.DefaultConfig()
	cfg.DailyCredits, cfg.SignupCredits = 20, 50
	for i := range cfg.Prices {
		cfg.Prices[i].UnitCredits = 6
		if cfg.Prices[i].Category == ledger.CategoryVideo {
			cfg.Prices[i].UnitCredits = 70
		}
	}
	for i := range cfg.Sources {
		if cfg.Sources[i].Source == ledger.SourceAdmin {
			cfg.Sources[i].Categories = []ledger.Category{ledger.CategoryImage}
		}
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	e := newEnvWithConfig(t, cfg)
	e.account("alice")
	u := e.signIn("alice")
	p := must(t, u.get(helpPath), http.StatusOK,
		"<h1>Credits &amp; usage</h1>",
		"costs <strong>6 credits</strong> per result",
		"<strong>20 free credits a day</strong>",
		"<strong>50 credits</strong> once",
		`<td class="num">70</td>`,
		"Video generation is paid with purchased credits only.",
		"Free credits pay for: Generate,",
		"Was this article helpful?")
	for _, stale := range []string{"15 free", "30 credits", "5 credits", ">60<", ">5<", "credits from support or"} {
		if strings.Contains(p.body, stale) {
			t.Errorf("the article shows %q, which the configuration does not say", stale)
		}
	}

	// With no free credits at all it says so instead.
	cfg2 := ledger.DefaultConfig()
	cfg2.DailyCredits, cfg2.SignupCredits = 0, 0
	e2 := newEnvWithConfig(t, cfg2)
	e2.account("bob")
	p = must(t, e2.signIn("bob").get(helpPath), http.StatusOK, "There are no free credits at the moment")
	if strings.Contains(p.body, "a day</strong>") || strings.Contains(p.body, "When you join") {
		t.Errorf("the article promises free credits the configuration does not give:\n%s", p.body)
	}
}

// The article is one click away: in the profile menu of every page and on
// Billing; /app/help leads to it.
func TestHelpArticleLinks(t *testing.T) {
	e := newEnv(t)
	e.account("alice")
	u := e.signIn("alice")
	for _, path := range []string{"/app/create", "/app/settings/account/billing"} {
		p := must(t, u.get(path), http.StatusOK)
		if strings.Count(p.body, `href="`+helpPath+`"`) < 1 {
			t.Errorf("%s has no link to the article", path)
		}
	}
	if p := must(t, u.get("/app/settings/account/billing"), http.StatusOK); strings.Count(p.body, `href="`+helpPath+`"`) != 2 {
		t.Errorf("billing links the article %d times, want 2 (menu and prices)", strings.Count(p.body, `href="`+helpPath+`"`))
	}
	if p := u.get("/app/help"); p.status != http.StatusSeeOther || p.location != helpPath {
		t.Fatalf("/app/help: %d %q", p.status, p.location)
	}
	// Signed out, it is the sign-in page.
	must(t, e.newUser().get(helpPath), http.StatusUnauthorized)
}

func feedbackOf(t *testing.T, e *env, account string) (ledger.Feedback, bool) {
	t.Helper()
	f, ok, err := e.eng.Feedback(context.Background(), account, "credits-and-usage")
	if err != nil {
		t.Fatal(err)
	}
	return f, ok
}

func allFeedback(t *testing.T, e *env) []ledger.Feedback {
	t.Helper()
	fs, _, err := e.eng.ListFeedback(context.Background(), "", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// "Was this article helpful?": post/redirect/get with the session's CSRF
// token; one answer per account, a second replaces the first; a comment
// over 2,000 characters, or one that breaks the text rule, is refused with
// a clear message and changes nothing; on both stores.
func TestHelpFeedback(t *testing.T) {
	eachStore(t, func(t *testing.T, mk func(t *testing.T, opts ...func(*httpapi.Server)) *env) {
		e := mk(t)
		e.account("alice")
		e.account("bob")
		u := e.signIn("alice")
		must(t, u.get(helpPath), http.StatusOK, `action="/app/help/credits-and-usage/feedback"`, `name="csrf"`)
		send := func(form url.Values) page {
			t.Helper()
			return u.post(helpPath+"/feedback", form)
		}
		// sent follows the redirect of a sent form to the article.
		sent := func(p page, outcome string, contains ...string) {
			t.Helper()
			want := helpPath + "?feedback=" + outcome + "#feedback"
			if p.posted == nil || p.posted.status != http.StatusSeeOther || p.location != want {
				t.Fatalf("sent: %d %q, want 303 to %q\n%s", p.status, p.location, want, p.body)
			}
			must(t, u.get(p.location), http.StatusOK, contains...)
		}

		// A first answer.
		sent(send(url.Values{"helpful": {"yes"}}), "thanks", "Thanks for the feedback!", "You answered <strong>Yes</strong>")
		first, ok := feedbackOf(t, e, "alice")
		if !ok || !first.Helpful || first.Comment != "" || !first.CreatedAt.Equal(e.clock.Now()) {
			t.Fatalf("first answer stored as %+v (%v)", first, ok)
		}

		// A second answer replaces it, comment and all; CRLF becomes LF.
		e.clock.Advance(time.Hour)
		sent(send(url.Values{"helpful": {"no"}, "comment": {"  Too short.\r\nMore examples, über alles.  "}}), "thanks",
			"You answered <strong>No</strong>", "Too short.\nMore examples, über alles.</textarea>")
		second, _ := feedbackOf(t, e, "alice")
		if second.Helpful || second.Comment != "Too short.\nMore examples, über alles." ||
			!second.CreatedAt.Equal(first.CreatedAt) || !second.UpdatedAt.Equal(e.clock.Now()) {
			t.Fatalf("second answer stored as %+v", second)
		}
		if n := len(allFeedback(t, e)); n != 1 {
			t.Fatalf("%d answers stored after two votes of one account, want 1", n)
		}

		// Refused: nothing changes.
		long := strings.Repeat("é", ledger.FeedbackCommentCharsMax+1)
		sent(send(url.Values{"helpful": {"yes"}, "comment": {long}}), "too-long",
			"Your feedback was not sent: a comment can be at most 2,000 characters")
		sent(send(url.Values{"comment": {"no answer chosen"}}), "missing", "Your feedback was not sent: choose Yes or No.")
		must(t, send(url.Values{"helpful": {"yes"}, "comment": {"a\x00b"}}), http.StatusBadRequest, "must be valid UTF-8 without NUL bytes")
		must(t, send(url.Values{"helpful": {"yes"}, "comment": {"a\xffb"}}), http.StatusBadRequest, "must be valid UTF-8 without NUL bytes")
		must(t, send(url.Values{"helpful": {"maybe\x00"}}), http.StatusBadRequest, "must be valid UTF-8 without NUL bytes")
		must(t, send(url.Values{"helpful": {"yes"}, "csrf": {"forged"}}), http.StatusForbidden)
		if got, _ := feedbackOf(t, e, "alice"); got != second {
			t.Fatalf("a refused form changed the answer: %+v, want %+v", got, second)
		}

		// Exactly the limit is taken (characters, not bytes: 4,000 here).
		sent(send(url.Values{"helpful": {"yes"}, "comment": {long[len("é"):]}}), "thanks")
		if got, _ := feedbackOf(t, e, "alice"); !got.Helpful || got.Comment != long[len("é"):] {
			t.Fatalf("a comment of exactly %d characters was not stored: %d bytes", ledger.FeedbackCommentCharsMax, len(got.Comment))
		}

		// Another account's answer is its own.
		b := e.signIn("bob")
		if p := b.post(helpPath+"/feedback", url.Values{"helpful": {"yes"}}); p.posted == nil || p.posted.status != http.StatusSeeOther {
			t.Fatalf("bob's answer: %d", p.status)
		}
		if p := must(t, b.get(helpPath), http.StatusOK); strings.Contains(p.body, "über") {
			t.Fatalf("bob's page shows alice's comment")
		}
		if n := len(allFeedback(t, e)); n != 2 {
			t.Fatalf("%d answers stored, want 2", n)
		}
	})
}

// failingFeedback is a store whose feedback writes fail.
type failingFeedback struct{ ledger.Store }

func (failingFeedback) SaveFeedback(context.Context, *ledger.Feedback) error {
	return errors.New("disk on fire")
}

// When the store cannot take the answer, the article says it was not
// sent and asks to try again; nothing is stored.
func TestHelpFeedbackStoreFailure(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "creditd.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvOn(t, failingFeedback{st})
	e.account("alice")
	u := e.signIn("alice")
	u.get(helpPath)
	p := u.post(helpPath+"/feedback", url.Values{"helpful": {"yes"}, "comment": {"kept?"}})
	if p.posted == nil || p.posted.status != http.StatusSeeOther || p.location != helpPath+"?feedback=failed#feedback" {
		t.Fatalf("failed send: %d %q", p.status, p.location)
	}
	must(t, u.get(p.location), http.StatusOK,
		`role="alert">There was a problem saving your feedback, and it was not sent. Please try again in a moment.`,
		`data-draft="failed"`)
	if fs := allFeedback(t, e); len(fs) != 0 {
		t.Fatalf("stored %v", fs)
	}
}
