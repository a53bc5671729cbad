package bench

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/store/sqlite"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// TestRunTiny runs a tiny configuration end to end: the in-process engine
// and the naive baseline on one SQLite file, and the HTTP ceiling with the
// raw client.
func TestRunTiny(t *testing.T) {
	var progress bytes.Buffer
	rep, err := Run(context.Background(), Config{
		Accounts: 50, Concurrency: 8, Duration: time.Second, Warmup: 100 * time.Millisecond,
		Hot: HotOff, Settings: []string{"engine-sqlite", "naive-sqlite", "ceiling"},
		DB: "off", Dir: t.TempDir(), Progress: &progress, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s\n%s", progress.String(), table.String())
	if !rep.OK {
		t.Fatal("report not OK")
	}
	got := map[string]*Result{}
	for _, r := range rep.Results {
		got[r.Setting] = r
	}
	for _, name := range []string{"engine-sqlite", "naive-sqlite", "ceiling-raw", "ceiling-nethttp"} {
		r := got[name]
		if r == nil {
			t.Fatalf("no result for %s", name)
		}
		if r.Error != "" || r.Skipped != "" {
			t.Fatalf("%s: error %q skipped %q", name, r.Error, r.Skipped)
		}
		if r.Cycles <= 0 || r.CyclesPerSec <= 0 || r.Errors != 0 {
			t.Errorf("%s: %d cycles (%.0f/s), %d errors %v", name, r.Cycles, r.CyclesPerSec, r.Errors, r.ErrorSamples)
		}
		if !(0 < r.LatencyP50Ms && r.LatencyP50Ms <= r.LatencyP99Ms && r.LatencyP99Ms <= r.LatencyP999Ms) {
			t.Errorf("%s: latency p50 %.3f p99 %.3f p99.9 %.3f ms", name, r.LatencyP50Ms, r.LatencyP99Ms, r.LatencyP999Ms)
		}
		if r.PeakRSSBytes <= 0 {
			t.Errorf("%s: peak RSS %d", name, r.PeakRSSBytes)
		}
		if r.Accounts != 50 {
			t.Errorf("%s: %d accounts", name, r.Accounts)
		}
	}
	eng, naive := got["engine-sqlite"], got["naive-sqlite"]
	for _, r := range []*Result{eng, naive} {
		if r.Check == nil || !r.Check.OK {
			t.Fatalf("%s: check %+v", r.Setting, r.Check)
		}
		if r.Commits == nil || *r.Commits <= 0 || r.OpsPerCommit == nil {
			t.Fatalf("%s: commits %v ops/commit %v", r.Setting, r.Commits, r.OpsPerCommit)
		}
	}
	if eng.JournalFullWaits == nil || *eng.JournalFullWaits != 0 || naive.JournalFullWaits != nil {
		t.Errorf("journal full waits: engine %v (want 0, counted), naive %v (want none)", eng.JournalFullWaits, naive.JournalFullWaits)
	}
	if *naive.OpsPerCommit != 1 {
		t.Errorf("naive ops/commit %v, want 1", *naive.OpsPerCommit)
	}
	if opc := *eng.OpsPerCommit; opc < 1 || opc > 8*2 {
		t.Errorf("engine ops/commit %v, want 1…16 (8 workers, 2 operations each)", opc)
	}
	if eng.Check.VerifiedAccounts != 50 || eng.Check.VerifiedEntries < 50*2 {
		t.Errorf("engine verify covered %d accounts, %d entries", eng.Check.VerifiedAccounts, eng.Check.VerifiedEntries)
	}
	if eng.Check.ChargedCredits < 5*eng.Cycles {
		t.Errorf("engine charged %d for %d measured cycles", eng.Check.ChargedCredits, eng.Cycles)
	}
	if eng.VsNaive == nil || *eng.VsNaive <= 0 {
		t.Errorf("engine vs naive %v", eng.VsNaive)
	}
	if v := got["ceiling-nethttp"].VsCeiling; v == nil || *v <= 0 {
		t.Errorf("ceiling-nethttp vs ceiling-raw %v", v)
	}
	if got["ceiling-raw"].Check != nil {
		t.Errorf("the ceiling has no books to check")
	}
	if !strings.Contains(table.String(), "engine-sqlite") || !strings.Contains(table.String(), "every setting's books balance") {
		t.Errorf("table:\n%s", table.String())
	}
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil || !bytes.Contains(js.Bytes(), []byte(`"cycles_per_sec"`)) {
		t.Errorf("json: %v\n%s", err, js.String())
	}
}

// TestWrongBooksFail checks that the checks catch books that do not add
// up: a fast wrong answer fails.
func TestWrongBooksFail(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), dbFileName)
	cfg := ledger.DefaultConfig()
	ids := []string{"a-0", "a-1", "a-2"}

	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	e, reg, err := newEngine(ctx, cfg, st, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if err := setupEngineAccounts(ctx, e, ids, 4); err != nil {
		t.Fatal(err)
	}
	lr, err := drive(ctx, &engineTarget{e: e, reg: reg, ids: ids, unit: 5}, len(ids), false, 4, 0, 200*time.Millisecond, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Close()
	if lr.total.cycles == 0 || !lr.commitOK || lr.commits == 0 {
		t.Fatalf("load: %+v", lr.total)
	}
	chk, err := checkStore(ctx, cfg, st, ids, 5, lr.total)
	if err != nil || !chk.OK {
		t.Fatalf("honest books: %v %+v", err, chk)
	}
	claimed := lr.total
	claimed.cycles++
	if chk, err := checkStore(ctx, cfg, st, ids, 5, claimed); err != nil || chk.OK {
		t.Fatalf("one cycle more than charged passed: %v %+v", err, chk)
	}

	// The naive baseline: a charge the ledger does not explain.
	nt, err := openNaiveSQLite(ctx, path, []string{"n-0", "n-1"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	defer nt.close()
	lr, err = drive(ctx, nt, 2, false, 4, 0, 200*time.Millisecond, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *lrCommitsPerOp(lr) != 1 {
		t.Fatalf("naive ops/commit %v", *lrCommitsPerOp(lr))
	}
	if chk, err := nt.check(ctx, "n-", lr.total); err != nil || !chk.OK {
		t.Fatalf("honest naive books: %v %+v", err, chk)
	}
	if _, err := nt.db.Exec(`UPDATE naive_accounts SET charged = charged + 5, available = available - 5 WHERE id = 'n-0'`); err != nil {
		t.Fatal(err)
	}
	if chk, err := nt.check(ctx, "n-", lr.total); err != nil || chk.OK {
		t.Fatalf("tampered naive books passed: %v %+v", err, chk)
	}
}

func lrCommitsPerOp(lr *loadResult) *float64 {
	v := lr.ops / lr.commits
	return &v
}

func TestHist(t *testing.T) {
	var h hist
	for i := 1; i <= 10000; i++ {
		h.record(time.Duration(i) * time.Microsecond)
	}
	for _, c := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 5000 * time.Microsecond}, {0.99, 9900 * time.Microsecond}, {0.999, 9990 * time.Microsecond}} {
		got := h.quantile(c.q)
		if diff := float64(got-c.want) / float64(c.want); diff < -0.02 || diff > 0.02 {
			t.Errorf("q%.3f = %v, want %v ±2%%", c.q, got, c.want)
		}
	}
	for v := uint64(0); v < 1<<20; v = v*3/2 + 1 {
		i := histIndex(v)
		if mid := histValue(i); i < histSub && mid != v {
			t.Errorf("exact bucket %d holds %d", i, mid)
		}
		if histIndex(histValue(i)) != i {
			t.Errorf("bucket %d: midpoint %d maps to %d", i, histValue(i), histIndex(histValue(i)))
		}
	}
	if histIndex(1<<62) != histBuckets-1 {
		t.Error("huge values must land in the last bucket")
	}
}

// TestRawConn checks the raw client's response parsing: content length,
// chunked bodies, Connection: close and redialing.
func TestRawConn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	responses := []string{
		"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 25\r\n\r\n{\"id\":\"hld_X\",\"amount\":5}",
		"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"id\"\r\n0f\r\n:\"hld_Y\",\"a\":1}\r\n0\r\n\r\n",
		"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					// Requests are one line here.
					if _, err := br.ReadString('\n'); err != nil {
						return
					}
					if _, err := io.WriteString(c, responses[i%len(responses)]); err != nil {
						return
					}
					if i%len(responses) == 2 {
						return
					}
				}
			}()
		}
	}()
	rc := &rawConn{addr: ln.Addr().String()}
	defer rc.close()
	for round := range 2 {
		status, body, _, err := rc.roundTrip([]byte("x\n"))
		if err != nil || status != 201 || string(body) != `{"id":"hld_X","amount":5}` {
			t.Fatalf("round %d: %d %q %v", round, status, body, err)
		}
		if id, ok := holdID(body); !ok || string(id) != "hld_X" {
			t.Fatalf("hold id %q", id)
		}
		status, body, _, err = rc.roundTrip([]byte("x\n"))
		if err != nil || status != 200 || string(body) != `{"id":"hld_Y","a":1}` {
			t.Fatalf("round %d chunked: %d %q %v", round, status, body, err)
		}
		status, _, _, err = rc.roundTrip([]byte("x\n"))
		if err != nil || status != 503 || rc.conn != nil {
			t.Fatalf("round %d close: %d %v (conn kept: %v)", round, status, err, rc.conn != nil)
		}
		// The next round trip redials.
	}
}

func TestFullWaitsNote(t *testing.T) {
	n := func(v int64) *int64 { return &v }
	rs := []*Result{
		{Setting: "engine-sqlite", JournalFullWaits: n(3)},
		{Setting: "engine-sqlite-hot", JournalFullWaits: n(0)},
		{Setting: "naive-sqlite"},
		{Setting: "http-sqlite", JournalFullWaits: n(1)},
	}
	if got := fullWaitsNote(rs); !strings.HasSuffix(got, ": engine-sqlite 3, http-sqlite 1") {
		t.Errorf("note %q", got)
	}
	if got := fullWaitsNote(rs[1:3]); got != "" {
		t.Errorf("note without waits %q, want none", got)
	}
}

func TestScrapeCounters(t *testing.T) {
	// The exposition format as promhttp writes it.
	batchOps := "# HELP creditd_engine_batch_ops Operations per committed batch.\n# TYPE creditd_engine_batch_ops histogram\n" +
		"creditd_engine_batch_ops_bucket{le=\"1\"} 3\ncreditd_engine_batch_ops_bucket{le=\"+Inf\"} 10\n" +
		"creditd_engine_batch_ops_sum 123\ncreditd_engine_batch_ops_count 10\n"
	waits := "# HELP creditd_sqlite_journal_full_waits_total Batches that waited.\n# TYPE creditd_sqlite_journal_full_waits_total counter\n" +
		"creditd_sqlite_journal_full_waits_total 4\n"
	for _, tc := range []struct {
		name, text string
		want       counters
	}{
		{"postgres", batchOps, counters{commits: 10, ops: 123, ok: true}},
		{"sqlite", batchOps + waits, counters{commits: 10, ops: 123, ok: true, fullWaits: 4, waitsOK: true}},
		{"none", "", counters{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				_, _ = bufio.NewReader(c).ReadString('\n')
				_, _ = io.WriteString(c, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: text/plain\r\n\r\n"+tc.text)
			}()
			got, err := scrapeCounters(http.DefaultClient, "http://"+ln.Addr().String())
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestSelect(t *testing.T) {
	c := Config{Settings: []string{"sqlite"}, Hot: HotOnly}
	if err := c.defaults(); err != nil {
		t.Fatal(err)
	}
	ss, err := c.selected()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range ss {
		names = append(names, s.name)
	}
	if got := strings.Join(names, ","); got != "engine-sqlite-hot,naive-sqlite-hot,http-sqlite-hot,http-batch-sqlite-hot" {
		t.Fatalf("selected %s", got)
	}
	c.Settings, c.Hot = []string{"http-batch"}, HotBoth
	names = nil
	if ss, err = c.selected(); err != nil {
		t.Fatal(err)
	}
	for _, s := range ss {
		names = append(names, s.name)
		if s.kind != "http" || !s.batch || s.client != ClientRaw {
			t.Errorf("%s: kind %s batch %v client %q", s.name, s.kind, s.batch, s.client)
		}
	}
	if got := strings.Join(names, ","); got != "http-batch-sqlite,http-batch-sqlite-hot,http-batch-pg,http-batch-pg-hot" {
		t.Fatalf("selected %s", got)
	}
	c.Settings = []string{"nope"}
	if _, err := c.selected(); err == nil {
		t.Fatal("unknown setting accepted")
	}
}

// The pacer hands out evenly spaced start times, a call of n cycles taking
// n slots.
func TestPacerSchedule(t *testing.T) {
	if newPacer(0) != nil || newPacer(-1) != nil {
		t.Fatal("a rate <= 0 must mean no pacing")
	}
	p := newPacer(1000) // 1 ms apart
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	p.begin(t0)
	for i, want := range []struct {
		n  int
		at time.Duration
	}{{1, 0}, {3, time.Millisecond}, {1, 4 * time.Millisecond}, {100, 5 * time.Millisecond}, {1, 105 * time.Millisecond}} {
		if got := p.claim(want.n); !got.Equal(t0.Add(want.at)) {
			t.Errorf("claim %d (%d cycles): %v, want t0+%v", i, want.n, got.Sub(t0), want.at)
		}
	}
}

// An open-loop run never starts more cycles than its rate allows.
func TestDriveOpenLoopKeepsTheRate(t *testing.T) {
	ctx := context.Background()
	var started atomic.Int64
	tgt := funcTarget(func(int) (outcome, error) { started.Add(1); return cycleDone, nil })
	const rate, d = 500.0, 300 * time.Millisecond
	lr, err := drive(ctx, tgt, 10, false, 8, 0, d, newPacer(rate), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Slots are due from the start: at most rate × elapsed (+1 for the
	// slot at time zero) may have started, however fast the target is.
	if max := int64(rate*lr.elapsed.Seconds()) + 1 + 8; started.Load() > max {
		t.Errorf("%d cycles started in %v at %v/s, want at most %d", started.Load(), lr.elapsed, rate, max)
	}
	if lr.window.cycles == 0 {
		t.Error("no cycle completed")
	}
}

// funcTarget is a target whose every worker runs f.
type funcTarget func(acct int) (outcome, error)

func (f funcTarget) worker(int) (cycleFunc, func(), error) { return cycleFunc(f), nil, nil }
func (f funcTarget) counters() (counters, error)           { return counters{}, nil }
