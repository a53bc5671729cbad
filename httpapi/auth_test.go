package httpapi_test

import (
	"bytes"
	"image"
	"image/png"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
)

func pngImage(w, h int) []byte {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewRGBA(image.Rect(0, 0, w, h))); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// as sends a request with another bearer key.
func (e *env) as(key string, status int, method, path string, body any, headers ...hdr) resp {
	e.t.Helper()
	h := hdr{"Authorization": "Bearer " + key}
	for _, x := range headers {
		for k, v := range x {
			h[k] = v
		}
	}
	r := e.do(method, path, body, h)
	if status != 0 && r.status != status {
		e.t.Fatalf("%s %s: %d, want %d: %s", method, path, r.status, status, r.raw)
	}
	return r
}

func (e *env) userToken(id string) string {
	e.t.Helper()
	tok := e.must(201, "POST", "/v1/accounts/"+id+"/tokens", map[string]any{}).str("token")
	if !strings.HasPrefix(tok, "ut_") {
		e.t.Fatalf("token %q", tok)
	}
	return tok
}

func TestUserTokens(t *testing.T) {
	e := newEnv(t)
	e.createAccount("alice", nil)
	e.createAccount("bob", nil)
	alice := e.userToken("alice")
	bobAsset := e.must(201, "POST", "/v1/accounts/bob/assets", pngImage(4, 4), hdr{"Content-Type": "image/png"}).str("id")
	bobJob := e.must(201, "POST", "/v1/jobs", map[string]any{"account_id": "bob", "action": "crop",
		"params": map[string]any{"source": bobAsset, "width": 2, "height": 2}}).str("id")

	t.Run("SeesAndActsOnItsOwnAccount", func(t *testing.T) {
		for _, p := range []string{"/v1/accounts/alice", "/v1/accounts/alice/balance", "/v1/accounts/alice/entries",
			"/v1/accounts/alice/quote?action=crop", "/v1/accounts/alice/jobs", "/v1/accounts/alice/assets", "/v1/prices"} {
			e.as(alice, 200, "GET", p, nil)
		}
		a := e.as(alice, 201, "POST", "/v1/accounts/alice/assets", pngImage(4, 4), hdr{"Content-Type": "image/png"})
		e.as(alice, 200, "GET", "/v1/assets/"+a.str("id"), nil)
		j := e.as(alice, 201, "POST", "/v1/jobs", map[string]any{"action": "crop",
			"params": map[string]any{"source": a.str("id"), "width": 2, "height": 2}})
		if j.str("account_id") != "alice" {
			t.Fatalf("%s", j.raw)
		}
		id := j.str("id")
		e.as(alice, 200, "GET", "/v1/jobs/"+id, nil)
		e.as(alice, 200, "PATCH", "/v1/jobs/"+id, map[string]any{"params": map[string]any{"source": a.str("id"), "width": 3, "height": 3}})
		e.as(alice, 200, "POST", "/v1/jobs/"+id+"/cancel", map[string]any{})
		if b := e.as(alice, 200, "GET", "/v1/accounts/alice/balance", nil); b.num("available") != 45 {
			t.Fatalf("%s", b.raw)
		}
	})

	t.Run("AnotherAccountIsNotFound", func(t *testing.T) {
		for _, p := range []string{"/v1/accounts/bob", "/v1/accounts/bob/balance", "/v1/accounts/bob/entries",
			"/v1/accounts/bob/quote?action=crop", "/v1/accounts/bob/jobs", "/v1/accounts/bob/assets",
			"/v1/accounts/bob/events", "/v1/jobs/" + bobJob, "/v1/assets/" + bobAsset} {
			if r := e.as(alice, 404, "GET", p, nil); r.errCode() != "not_found" {
				t.Errorf("%s: %s", p, r.raw)
			}
		}
		// Same answer as for an account that does not exist.
		if a, b := e.as(alice, 404, "GET", "/v1/accounts/bob/balance", nil), e.as(alice, 404, "GET", "/v1/accounts/nobody/balance", nil); strings.ReplaceAll(string(a.raw), "bob", "X") != strings.ReplaceAll(string(b.raw), "nobody", "X") {
			t.Errorf("404s differ: %s / %s", a.raw, b.raw)
		}
		e.as(alice, 404, "POST", "/v1/jobs", map[string]any{"account_id": "bob", "action": "generate"})
		e.as(alice, 404, "PATCH", "/v1/jobs/"+bobJob, map[string]any{"params": map[string]any{"source": bobAsset, "width": 1, "height": 1}})
		e.as(alice, 404, "POST", "/v1/jobs/"+bobJob+"/cancel", map[string]any{})
		e.as(alice, 404, "POST", "/v1/accounts/bob/assets", pngImage(2, 2), hdr{"Content-Type": "image/png"})
		// Another account's image cannot be the source of one's own job.
		e.as(alice, 400, "POST", "/v1/jobs", map[string]any{"action": "crop", "params": map[string]any{"source": bobAsset, "width": 1, "height": 1}})
		if j := e.must(200, "GET", "/v1/jobs/"+bobJob, nil); j.str("status") != "queued" {
			t.Fatalf("bob's job changed: %s", j.raw)
		}
	})

	t.Run("AdminRoutesAreForbidden", func(t *testing.T) {
		for _, c := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/v1/accounts/alice/grants", map[string]any{"amount": 100, "source": "admin"}},
			{"PUT", "/v1/accounts/alice", map[string]any{"plan": "paid"}},
			{"PUT", "/v1/accounts/carol", map[string]any{}},
			{"POST", "/v1/accounts/alice/tokens", map[string]any{}},
			{"POST", "/v1/accounts/alice/login-links", map[string]any{}},
			{"POST", "/v1/holds", map[string]any{"account_id": "alice", "action": "generate"}},
			{"GET", "/v1/test-clock", nil},
			{"POST", "/v1/worker/lease", map[string]any{"actions": []string{"crop"}}},
		} {
			if r := e.as(alice, 403, c.method, c.path, c.body); r.errCode() != "forbidden" {
				t.Errorf("%s %s: %s", c.method, c.path, r.raw)
			}
		}
		if e.available("alice") != 45 {
			t.Fatal("a user changed its balance")
		}
	})

	t.Run("BadTokensAreUnauthenticated", func(t *testing.T) {
		tampered := alice[:len(alice)-2] + "xx"
		forged := strings.Replace(alice, alice[3:8], "AAAAA", 1)
		for _, tok := range []string{tampered, forged, "ut_", "ut_abc.def", "ut_" + strings.Repeat("a", 5000)} {
			if r := e.as(tok, 401, "GET", "/v1/accounts/alice/balance", nil); r.errCode() != "unauthenticated" {
				t.Errorf("%q: %s", tok, r.raw)
			}
		}
		// A token signed with another key (another deployment) is refused.
		other := newEnv(t)
		other.createAccount("alice", nil)
		e.as(other.userToken("alice"), 401, "GET", "/v1/accounts/alice/balance", nil)
	})

	t.Run("TokensExpire", func(t *testing.T) {
		tok := e.must(201, "POST", "/v1/accounts/alice/tokens", map[string]any{"ttl_seconds": 60})
		if exp := tok.str("expires_at"); exp != e.clock.Now().Add(time.Minute).Format(time.RFC3339) {
			t.Fatalf("expires_at %s", exp)
		}
		e.as(tok.str("token"), 200, "GET", "/v1/accounts/alice/balance", nil)
		e.advance(61 * time.Second)
		if r := e.as(tok.str("token"), 401, "GET", "/v1/accounts/alice/balance", nil); !strings.Contains(r.str("error.message"), "expired") {
			t.Fatalf("%s", r.raw)
		}
		for _, ttl := range []int64{0, -1, 31 * 86400} {
			e.must(400, "POST", "/v1/accounts/alice/tokens", map[string]any{"ttl_seconds": ttl})
		}
		e.must(404, "POST", "/v1/accounts/nobody/tokens", map[string]any{})
	})

	t.Run("LoginLinks", func(t *testing.T) {
		r := e.must(201, "POST", "/v1/accounts/alice/login-links", map[string]any{})
		if u := r.str("url"); !strings.HasPrefix(u, e.url+"/app/login?token=ll_") {
			t.Fatalf("url %s", u)
		}
		e.must(404, "POST", "/v1/accounts/nobody/login-links", map[string]any{})
		// Behind a TLS proxy the link says https.
		r = e.do("POST", "/v1/accounts/alice/login-links", map[string]any{}, hdr{"X-Forwarded-Proto": "https"})
		if !strings.HasPrefix(r.str("url"), "https://") {
			t.Fatalf("url %s", r.str("url"))
		}
	})
	e.verify()
}

func TestPublicURLInLoginLinks(t *testing.T) {
	e := newEnv(t, withApp(func(o *app.Options) { o.PublicURL = "https://app.example.com/" }))
	e.createAccount("alice", nil)
	r := e.must(201, "POST", "/v1/accounts/alice/login-links", map[string]any{})
	if !strings.HasPrefix(r.str("url"), "https://app.example.com/app/login?token=ll_") {
		t.Fatalf("url %s", r.str("url"))
	}
	if r.status != http.StatusCreated {
		t.Fatal(r.status)
	}
}
