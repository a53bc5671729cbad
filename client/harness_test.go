package client_test

import (
	"bytes"
	"context"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/billing"
	"github.com/creditd/creditd/blob"
	"github.com/creditd/creditd/client"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/backup"
	"github.com/creditd/creditd/internal/pgtest"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
	"github.com/creditd/creditd/store/postgres"
	"github.com/creditd/creditd/store/sqlite"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const (
	adminKey  = "sk_test_admin_client"
	workerKey = "sk_test_worker_client"
)

// server is a real creditd API (httpapi over app, engine and a real
// store) on a real HTTP listener, with a test clock.
type server struct {
	url    string
	pg     bool
	clock  *ledger.TestClock
	admin  *client.Client // the admin key
	worker *client.Client // the worker key
	// transport is the round tripper every client of the server uses
	// (checkTransport: each exchange is checked against the API's
	// document).
	transport http.RoundTripper
}

// eachStore runs f as a subtest on SQLite and on PostgreSQL.
func eachStore(t *testing.T, f func(t *testing.T, s *server)) {
	t.Run("SQLite", func(t *testing.T) { f(t, newServer(t, false)) })
	t.Run("PostgreSQL", func(t *testing.T) { f(t, newServer(t, true)) })
}

func newServer(t *testing.T, pg bool) *server {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	var st ledger.Store
	var blobs blob.Store
	var backupFn httpapi.BackupFunc
	if pg {
		ps, err := postgres.Open(ctx, pgtest.DSN(t), postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		st, blobs = ps, ps.Blobs()
	} else {
		ss, err := sqlite.Open(ctx, filepath.Join(dir, "creditd.db"))
		if err != nil {
			t.Fatal(err)
		}
		bd, err := blob.NewDir(filepath.Join(dir, "assets"))
		if err != nil {
			t.Fatal(err)
		}
		st, blobs = ss, bd
		backupFn = func(ctx context.Context) (*backup.Archive, error) {
			return backup.Create(ctx, dir, backup.Layout{DB: "creditd.db", Assets: "assets"}, func(ctx context.Context, dst string) (int64, []string, error) {
				if _, err := ss.Snapshot(ctx, dst); err != nil {
					return 0, nil, err
				}
				return sqlite.SnapshotInfo(ctx, dst)
			})
		}
	}
	clock := ledger.NewTestClock(time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := ledger.DefaultConfig()
	eng, err := engine.New(ctx, engine.Options{Config: cfg, Store: st, Clock: clock, Logger: log, SweepInterval: time.Hour, Blobs: blobs})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	svc := app.New(app.Options{Engine: eng, Store: st, Blobs: blobs, Logger: log, Registry: reg})
	api := &httpapi.Server{App: svc, AdminKey: adminKey, WorkerKey: workerKey, Logger: log, Registry: reg, TestClock: clock, Backup: backupFn}
	bill, err := billing.New(billing.DefaultConfig(), svc, log)
	if err != nil {
		t.Fatal(err)
	}
	api.Billing = bill
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(func() {
		svc.CloseEvents()
		srv.Close()
		eng.Close()
		st.Close()
	})
	s := &server{url: srv.URL, pg: pg, clock: clock, transport: checkTransport(t, http.DefaultTransport)}
	s.admin = s.client(adminKey)
	s.worker = s.client(workerKey)
	return s
}

// client is a client of the server with key.
func (s *server) client(key string) *client.Client {
	c := client.New(s.url, key)
	c.HTTP = &http.Client{Transport: s.transport}
	return c
}

// testPNG is a w×h PNG of one colour.
func testPNG(t *testing.T, w, h int, c color.Color) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, c)
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// newFake serves h (a stand-in for a server misbehaving) and returns its
// URL.
func newFake(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
