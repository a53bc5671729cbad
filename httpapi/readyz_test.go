package httpapi_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/readiness"
)

// GET /readyz on both stores: 200 {"status":"ready"} once the write probe
// (a real batch through the store's write path, touching no account)
// commits; 503 {"status":"unavailable"} when the store refuses it and when
// the node drains; never any detail. The probe's record leaves every
// account's books as they were.
func TestReadyzFollowsTheWriteProbe(t *testing.T) {
	eachStoreOpt(t, func(t *testing.T, store envOpt) {
		var p *readiness.Probe
		e := newEnv(t, store, withAPI(func(api *httpapi.Server) {
			p = readiness.New(engineOf(api), time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			api.Readiness = p
		}))
		ctx := context.Background()
		readyz := func(status int, body string) {
			t.Helper()
			r := e.must(status, "GET", "/readyz", nil, hdr{"Authorization": ""})
			if got := strings.TrimSpace(string(r.raw)); got != body {
				t.Fatalf("readyz: %s, want %s", got, body)
			}
		}
		readyz(503, `{"status":"unavailable"}`) // no probe yet
		e.createAccount("a", nil)
		before := e.available("a")
		for range 3 {
			if !p.Check(ctx) {
				t.Fatal("the write probe failed on a healthy store")
			}
			readyz(200, `{"status":"ready"}`)
		}
		if got := e.available("a"); got != before {
			t.Fatalf("the write probe changed a's balance: %d → %d", before, got)
		}
		e.verify()
		p.Drain()
		readyz(503, `{"status":"unavailable"}`)

		// A store that refuses writes: the probe fails, and /readyz says
		// so without saying why.
		e2 := newEnv(t, store, withAPI(func(api *httpapi.Server) {
			p = readiness.New(engineOf(api), time.Hour, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
			api.Readiness = p
		}))
		if !p.Check(ctx) {
			t.Fatal("the write probe failed on a healthy store")
		}
		if err := e2.store.Close(); err != nil {
			t.Fatal(err)
		}
		if p.Check(ctx) {
			t.Fatal("the write probe succeeded on a closed store")
		}
		r := e2.must(503, "GET", "/readyz", nil, hdr{"Authorization": ""})
		if got := strings.TrimSpace(string(r.raw)); got != `{"status":"unavailable"}` {
			t.Fatalf("readyz with the store closed: %s", got)
		}
	})
}
