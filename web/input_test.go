package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/postgres"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// eachStore runs fn with an env maker on SQLite and on PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, mk func(t *testing.T, opts ...func(*httpapi.Server)) *env)) {
	t.Run("SQLite", func(t *testing.T) { fn(t, newEnv) })
	t.Run("PostgreSQL", func(t *testing.T) {
		fn(t, func(t *testing.T, opts ...func(*httpapi.Server)) *env {
			st, err := postgres.Open(context.Background(), pgtest.DSN(t), postgres.Options{})
			if err != nil {
				t.Fatal(err)
			}
			return newEnvOn(t, st, opts...)
		})
	})
}

// The web app applies the text rule to its addresses and forms: a path,
// query or form value with invalid UTF-8 or a NUL is a 400 page and
// starts nothing, on both stores (on PostgreSQL a job page's bad id was a
// 500, and a form's bad one-time key failed the commit it shared).
func TestTextRuleInTheWebApp(t *testing.T) {
	eachStore(t, func(t *testing.T, mk func(t *testing.T, opts ...func(*httpapi.Server)) *env) {
		e := mk(t)
		e.account("alice")
		u := e.signIn("alice")
		before := e.available("alice")
		const rule = "must be valid UTF-8 without NUL bytes"
		generate := func(prompt, idem string) url.Values {
			return url.Values{"action": {"generate"}, "prompt": {prompt}, "quantity": {"1"}, "idem": {idem}}
		}
		for name, p := range map[string]func() page{
			"PromptNUL":    func() page { return u.post("/app/jobs", generate("a\x00b", "k1")) },
			"PromptRawFF":  func() page { return u.post("/app/jobs", generate("a\xffb", "k2")) },
			"IdemKeyNUL":   func() page { return u.post("/app/jobs", generate("a cat", "k\x00")) },
			"IdemKeyRaw80": func() page { return u.post("/app/jobs", generate("a cat", "k\x80")) },
			"FieldNameFF": func() page {
				return u.post("/app/jobs", url.Values{"action": {"generate"}, "prompt": {"a cat"}, "\xff": {"1"}})
			},
			"JobPathFF":     func() page { return u.get("/app/jobs/%FF") },
			"JobPathNUL":    func() page { return u.get("/app/jobs/job_%00") },
			"CancelPathFF":  func() page { return u.post("/app/jobs/%FF/cancel", url.Values{}) },
			"AssetPathNUL":  func() page { return u.get("/app/assets/%00") },
			"QuerySourceFF": func() page { return u.get("/app/create?action=crop&source=%FF") },
		} {
			t.Run(name, func(t *testing.T) { must(t, p(), http.StatusBadRequest, rule) })
		}
		if got := e.available("alice"); got != before {
			t.Fatalf("available %d, want %d: a refused form started a job", got, before)
		}
		if js, _, err := e.eng.ListJobs(context.Background(), "alice", 0, 10); err != nil || len(js) != 0 {
			t.Fatalf("jobs %v %v, want none", js, err)
		}
		// Text beyond ASCII is text: the job starts and shows its prompt.
		p := u.post("/app/jobs", generate("Schnee über Zürich", "k3"))
		if p.status != http.StatusOK || !strings.HasPrefix(p.location, "/app/jobs/") {
			t.Fatalf("valid prompt: %d %s\n%s", p.status, p.location, p.body)
		}
		must(t, u.get(p.location), http.StatusOK, "Schnee über Zürich")
		if rep, err := ledger.VerifyStore(context.Background(), ledger.DefaultConfig(), storeOf(e.api)); err != nil || len(rep.Problems) > 0 {
			t.Fatalf("verify: %v %v", err, rep)
		}
	})
}
