package bench

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/httpapi"
	"github.com/creditd/creditd/internal/promtext"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite"
)

// TestBatchTarget drives creditd's API (in this process, over real HTTP)
// through POST /v1/batch with both clients, and checks the books as the
// http-batch settings do.
func TestBatchTarget(t *testing.T) {
	for _, client := range []string{ClientRaw, ClientNetHTTP} {
		t.Run(client, func(t *testing.T) {
			ctx := context.Background()
			cfg := ledger.DefaultConfig()
			st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), dbFileName))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			e, reg, err := newEngine(ctx, cfg, st, quiet)
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					e.Close()
				}
			}()
			api := &httpapi.Server{App: app.New(app.Options{Engine: e, Store: st, Logger: quiet}), AdminKey: "bench", Logger: quiet}
			srv := httptest.NewServer(api.Handler())
			defer srv.Close()
			ids := []string{"b-0", "b-1", "b-2", "b-3", "b-4"}
			if err := setupHTTPAccounts(srv.Client(), srv.URL, "bench", ids, 4); err != nil {
				t.Fatal(err)
			}
			ht, err := newHTTPTarget(srv.URL, "bench", ids, 5, client, 4, time.Now().Add(time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			defer ht.close()
			tgt := newBatchTarget(ht, 7)
			tgt.metrics = func() (counters, error) {
				mfs, err := promtext.Gather(reg)
				return batchOps(mfs), err
			}
			lr, err := drive(ctx, tgt, len(ids), false, 4, 0, 300*time.Millisecond, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			if lr.total.cycles == 0 || lr.total.errors() != 0 || lr.total.cycles%7 != 0 || len(lr.errs) != 0 {
				t.Fatalf("load: %+v %v", lr.total, lr.errs)
			}
			// 7 reserves, then 7 captures, share commits.
			if !lr.commitOK || lr.ops/lr.commits < 2 {
				t.Fatalf("%.0f operations in %.0f commits", lr.ops, lr.commits)
			}
			if q := lr.hist.quantile(0.5); q <= 0 || lr.hist.n != uint64(lr.window.cycles) {
				t.Fatalf("latency p50 %v over %d samples for %d cycles", q, lr.hist.n, lr.window.cycles)
			}
			ht.close()
			srv.Close()
			e.Close()
			closed = true
			chk, err := checkStore(ctx, cfg, st, ids, 5, lr.total)
			if err != nil || !chk.OK || chk.ChargedCredits != 5*lr.total.cycles {
				t.Fatalf("books: %v %+v", err, chk)
			}
		})
	}
}

// TestBatchTargetOutcomes checks how the batch worker counts refused and
// lost operations, against a fake server.
func TestBatchTargetOutcomes(t *testing.T) {
	hold := func(id string, captured int) string {
		return fmt.Sprintf(`{"id":"%s","status":"pending","captured_amount":%d,"portions":[{"grant_id":"grt_x"}]}`, id, captured)
	}
	var reserveAnswer, captureAnswer string
	reserveStatus := http.StatusOK
	var captureBodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body := string(b)
		w.Header().Set("Content-Type", "application/json")
		if strings.Contains(body, `"op":"reserve"`) {
			w.WriteHeader(reserveStatus)
			_, _ = w.Write([]byte(reserveAnswer))
			return
		}
		captureBodies = append(captureBodies, body)
		_, _ = w.Write([]byte(captureAnswer))
	}))
	defer srv.Close()
	ht, err := newHTTPTarget(srv.URL, "k", []string{"a", "b", "c"}, 5, ClientRaw, 1, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	run, release, err := newBatchTarget(ht, 3).batchWorker(0)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	outs := make([]outcome, 3)

	// The second reserve is refused, the third capture charged nothing.
	reserveAnswer = `{"results":[{"status":201,"hold":` + hold("hold_1", 0) + `},` +
		`{"status":402,"error":{"code":"insufficient_credits","message":"…","hold":{"id":"hold_x"}}},` +
		`{"status":201,"idempotent_replayed":true,"hold":` + hold("hold_3", 0) + `}]}`
	captureAnswer = `{"results":[{"status":200,"hold":` + hold("hold_1", 5) + `},{"status":200,"hold":` + hold("hold_3", 0) + `}]}`
	err = run([]int{0, 1, 2}, outs)
	if fmt.Sprint(outs) != fmt.Sprint([]outcome{cycleDone, cycleFailed, cycleDone}) || err == nil || !strings.Contains(err.Error(), "402") {
		t.Fatalf("outcomes %v, err %v", outs, err)
	}
	if len(captureBodies) != 1 || captureBodies[0] != `{"operations":[{"op":"capture","hold_id":"hold_1","quantity":1},{"op":"capture","hold_id":"hold_3","quantity":1}]}` {
		t.Fatalf("captures sent: %q", captureBodies)
	}
	// A capture refused: its hold stays pending.
	captureAnswer = `{"results":[{"status":200,"hold":` + hold("hold_1", 5) + `},{"status":409,"error":{"code":"conflict","message":"…"}}]}`
	if err = run([]int{0, 1, 2}, outs); fmt.Sprint(outs) != fmt.Sprint([]outcome{cycleDone, cycleFailed, cycleOrphan}) || err == nil {
		t.Fatalf("outcomes %v, err %v", outs, err)
	}
	// An answer with fewer results than operations: nobody knows which
	// holds exist.
	reserveAnswer = `{"results":[{"status":201,"hold":` + hold("hold_1", 0) + `}]}`
	if err = run([]int{0, 1, 2}, outs); fmt.Sprint(outs) != fmt.Sprint([]outcome{cycleAmbiguousReserve, cycleAmbiguousReserve, cycleAmbiguousReserve}) || err == nil {
		t.Fatalf("outcomes %v, err %v", outs, err)
	}
	// A request refused as a whole ran nothing.
	reserveAnswer, reserveStatus = `{"error":{"code":"invalid_request","message":"no"}}`, http.StatusBadRequest
	if err = run([]int{0, 1, 2}, outs); fmt.Sprint(outs) != fmt.Sprint([]outcome{cycleFailed, cycleFailed, cycleFailed}) || err == nil {
		t.Fatalf("outcomes %v, err %v", outs, err)
	}
}

func TestBatchWorkers(t *testing.T) {
	r := &runner{cfg: Config{Concurrency: 256, BatchOps: 100}, lcfg: ledger.DefaultConfig()}
	for _, c := range []struct {
		s       setting
		workers int
	}{{setting{}, 256}, {setting{hot: true}, 256}, {setting{batch: true}, 3}, {setting{batch: true, hot: true}, 3}} {
		if got := r.workers(c.s); got != c.workers {
			t.Errorf("%+v: %d workers, want %d (about 256 cycles in flight)", c.s, got, c.workers)
		}
	}
	r.cfg.BatchWorkers = 256
	if got := r.workers(setting{batch: true}); got != 256 {
		t.Errorf("--batch-workers 256: %d workers", got)
	}
	if got := r.workers(setting{batch: true, hot: true}); got != 100 {
		t.Errorf("hot: %d workers, want 10,000 pending holds / 100", got)
	}
}
