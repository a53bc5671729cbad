package httpapi_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/web"
)

// answerHelpful sends the web app's "Was this article helpful?" form as
// account (a web session of its own) and expects the redirect back to
// the article with thanks.
func (e *env) answerHelpful(account string, helpful bool, comment string) {
	e.t.Helper()
	c, err := e.app.NewClaims(context.Background(), account, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	c.Nonce = "feedback-" + account + "-" + e.clock.Now().Format(time.RFC3339Nano)
	answer := "no"
	if helpful {
		answer = "yes"
	}
	form := url.Values{"csrf": {e.app.MAC(app.PurposeCSRF, account+"\x00"+c.Nonce)}, "helpful": {answer}, "comment": {comment}}
	req, _ := http.NewRequest("POST", e.url+"/app/help/credits-and-usage/feedback", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: web.SessionCookie, Value: e.app.Seal(app.PurposeSession, c)})
	res, err := noRedirects.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	res.Body.Close()
	if loc := res.Header.Get("Location"); res.StatusCode != http.StatusSeeOther || !strings.Contains(loc, "feedback=thanks") {
		e.t.Fatalf("feedback of %s: %d %q", account, res.StatusCode, loc)
	}
}

// GET /v1/feedback lists the answers the web app took, latest first, in
// pages, for the admin key only; a changed answer is listed once, as it
// now is. On both stores.
func TestListFeedback(t *testing.T) {
	eachStore(t, func(t *testing.T, opts ...envOpt) {
		e := newEnv(t, append(opts, withAPI(func(s *httpapi.Server) { s.Web = web.New(s.App) }))...)
		empty := e.must(200, "GET", "/v1/feedback", nil)
		if empty.str("object") != "list" || len(empty.body["data"].([]any)) != 0 || empty.body["has_more"] != false {
			t.Fatalf("empty list: %s", empty.raw)
		}
		for _, id := range []string{"alice", "bob", "carol"} {
			e.createAccount(id, nil)
		}
		e.answerHelpful("alice", true, "")
		e.advance(time.Minute)
		e.answerHelpful("bob", false, "Needs an example with video.")
		e.advance(time.Minute)
		e.answerHelpful("carol", true, "")
		e.advance(time.Minute)
		e.answerHelpful("alice", false, "Changed my mind: Zürich ✓") // replaces alice's first answer

		// Pages of two, following next_cursor.
		var got []map[string]any
		path := "/v1/feedback?limit=2"
		for pages := 0; ; pages++ {
			if pages > 3 {
				t.Fatal("too many pages")
			}
			r := e.must(200, "GET", path, nil)
			for _, d := range r.body["data"].([]any) {
				got = append(got, d.(map[string]any))
			}
			if r.body["has_more"] != true {
				break
			}
			path = "/v1/feedback?limit=2&cursor=" + url.QueryEscape(r.str("next_cursor"))
		}
		var order []string
		for _, f := range got {
			order = append(order, f["account_id"].(string))
		}
		if strings.Join(order, ",") != "alice,carol,bob" {
			t.Fatalf("listed %v, want alice (changed last), carol, bob", order)
		}
		a := got[0]
		if a["article"] != "credits-and-usage" || a["helpful"] != false || a["comment"] != "Changed my mind: Zürich ✓" ||
			a["created_at"] != "2026-06-15T10:00:00Z" || a["updated_at"] != "2026-06-15T10:03:00Z" {
			t.Fatalf("alice's answer: %v", a)
		}
		if got[2]["comment"] != "Needs an example with video." || got[2]["helpful"] != false {
			t.Fatalf("bob's answer: %v", got[2])
		}

		// One article; an article without answers; bad parameters.
		if r := e.must(200, "GET", "/v1/feedback?article=credits-and-usage", nil); len(r.body["data"].([]any)) != 3 {
			t.Fatalf("article filter: %s", r.raw)
		}
		if r := e.must(200, "GET", "/v1/feedback?article=other", nil); len(r.body["data"].([]any)) != 0 {
			t.Fatalf("another article: %s", r.raw)
		}
		for _, bad := range []string{"?limit=0", "?limit=501", "?cursor=x", "?article=%00", "?article=%FF", "?article=a%20b"} {
			if r := e.do("GET", "/v1/feedback"+bad, nil); r.status != 400 || r.str("error.code") != "invalid_request" {
				t.Errorf("GET /v1/feedback%s: %d %s, want 400 invalid_request", bad, r.status, r.raw)
			}
		}

		// Admin only: users' answers are not theirs to list.
		if r := e.as(e.userToken("alice"), 403, "GET", "/v1/feedback", nil); r.str("error.code") != "forbidden" {
			t.Fatalf("user token: %s", r.raw)
		}
	})
}
