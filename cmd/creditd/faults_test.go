package main

// Fault tests: real `creditd serve` processes under concurrent load while
// something goes wrong — SIGTERM, PostgreSQL restarted under two nodes, a
// full disk. Each checks what /readyz says during and after the fault, that
// every acknowledged operation is in the ledger (the crash test's model),
// that operations left unanswered replay exactly once with their
// Idempotency-Key, and that `creditd verify` passes. The load runs for a
// bounded real time; every wait for a state is a poll with a deadline.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/pgtest"
)

const (
	faultWorkers = 12
	// faultProbeInterval is the servers' --ready-probe-interval here: short,
	// so that /readyz follows a fault within a fraction of a second.
	faultProbeInterval = "100ms"
	// faultRetryPause is how long a load worker waits before retrying an
	// operation answered 503 (with the same Idempotency-Key).
	faultRetryPause = 20 * time.Millisecond
	// faultOutage is how long PostgreSQL stays down, or the disk full, at
	// least.
	faultOutage = 1500 * time.Millisecond
)

// faultLoad drives the crash test's operations (ledgerModel.nextOp) from
// faultWorkers goroutines against one or more nodes.
type faultLoad struct {
	t       *testing.T
	m       *ledgerModel
	workers []*workerState
	rngs    []*rand.Rand
	run     string
	round   int
	nodes   []*apiClient
	// retry: an operation answered 503, or whose connection failed, is sent
	// again with its key (to the next node) until stop; without it, it is
	// left in flight and the worker ends.
	retry bool

	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	inflight []*crashOp
	errs     []error // transport errors (no answer)

	acked, rejected, unavailable atomic.Int64
}

func newFaultLoad(t *testing.T, run string, nodes []*apiClient, retry bool) *faultLoad {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	l := &faultLoad{t: t, m: &ledgerModel{accounts: map[string]*accountModel{}, holds: map[string]*holdModel{}, jobs: map[string]*jobModel{}},
		run: run, round: 1, nodes: nodes, retry: retry}
	for i := range faultWorkers {
		l.workers = append(l.workers, &workerState{})
		l.rngs = append(l.rngs, rand.New(rand.NewPCG(seed, uint64(i))))
	}
	return l
}

// start starts the workers; halt stops them and waits.
func (l *faultLoad) start() {
	l.stop = make(chan struct{})
	for w := range l.workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			l.work(w)
		}()
	}
}

func (l *faultLoad) halt() {
	close(l.stop)
	l.wg.Wait()
}

func (l *faultLoad) stopped() bool {
	select {
	case <-l.stop:
		return true
	default:
		return false
	}
}

func (l *faultLoad) work(w int) {
	ws, rng := l.workers[w], l.rngs[w]
	for !l.stopped() {
		o := l.m.nextOp(w, ws, rng, l.run, l.round)
		for attempt := 0; ; attempt++ {
			c := l.nodes[(w+attempt)%len(l.nodes)]
			r, err := c.do(o.method, o.path, o.body, o.key)
			if err == nil && r.status < 500 {
				o.resp = r
				if err := l.m.apply(ws, o, r); err != nil {
					l.t.Errorf("%v", err)
					return
				}
				if r.status >= 300 {
					l.rejected.Add(1)
				} else {
					l.acked.Add(1)
				}
				break
			}
			o.resp, o.err = r, err
			if err == nil {
				if r.status != http.StatusServiceUnavailable {
					l.t.Errorf("%v answered %d %s: a fault may only make the server answer 503", o, r.status, bytes.TrimSpace(r.body))
				}
				l.unavailable.Add(1)
			} else {
				l.mu.Lock()
				l.errs = append(l.errs, err)
				l.mu.Unlock()
			}
			if !l.retry || l.stopped() {
				l.mu.Lock()
				l.inflight = append(l.inflight, o)
				l.mu.Unlock()
				return
			}
			select {
			case <-l.stop:
			case <-time.After(faultRetryPause):
			}
		}
	}
}

// waitFor polls cond every 10 ms until it holds, failing the test after
// timeout; it returns how long it took.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

// readyzStatus is GET /readyz's status (0 when there is no answer); it
// also checks that the answer is exactly the anonymous status.
func readyzStatus(t *testing.T, base string) int {
	t.Helper()
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get(base + "/readyz")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Errorf("GET /readyz: %d with a body that is not JSON: %v", resp.StatusCode, err)
	}
	want := map[int]string{http.StatusOK: "ready", http.StatusServiceUnavailable: "unavailable"}[resp.StatusCode]
	if len(body) != 1 || want == "" || body["status"] != want {
		t.Errorf("GET /readyz answered %d %v; want 200 {status: ready} or 503 {status: unavailable}", resp.StatusCode, body)
	}
	return resp.StatusCode
}

// waitReadyz waits until base's /readyz answers status.
func waitReadyz(t *testing.T, base string, status int, timeout time.Duration) time.Duration {
	t.Helper()
	return waitFor(t, timeout, fmt.Sprintf("GET %s/readyz answering %d", base, status), func() bool {
		return readyzStatus(t, base) == status
	})
}

// storeWritable scrapes creditd_store_writable.
func storeWritable(t *testing.T, c *apiClient) float64 {
	return scrapeMetric(t, c, "creditd_store_writable")
}

// loggedNotReady requires that srv logged at least once that its store
// refuses writes, with the store's error.
func loggedNotReady(t *testing.T, srv *serverProc, name string) {
	t.Helper()
	for _, line := range strings.Split(srv.stderr.String(), "\n") {
		if strings.Contains(line, `"msg":"store refuses writes: not ready"`) && strings.Contains(line, `"err":`) {
			return
		}
	}
	t.Errorf("%s logged no \"store refuses writes: not ready\" line with the error", name)
}

// runVerifyArgs runs `creditd verify ARGS` and requires a clean result.
func runVerifyArgs(t *testing.T, when string, args ...string) {
	t.Helper()
	out, errOut, code := runCLI(t, nil, append([]string{"verify"}, args...)...)
	if code != 0 || strings.Contains(out, "MISMATCH") || !strings.Contains(out, ": 0 problems") {
		t.Errorf("verify %s: exit %d\nstdout:\n%s\nstderr:\n%s", when, code, tail(out, 4000), errOut)
		return
	}
	t.Logf("verify %s: %s", when, strings.TrimSpace(out))
}

// checkAfterFault replays the operations left unanswered, replays some
// acknowledged ones, and checks the model against c.
func (l *faultLoad) checkAfterFault(c *apiClient, when string) {
	t := l.t
	t.Helper()
	replayInflight(t, c, l.m, l.workers, l.inflight, l.round)
	l.inflight = nil
	replayAcked(t, c, l.m, rand.New(rand.NewPCG(1, 2)), 64)
	checkModel(t, c, l.m, l.round)
	checkEvents(t, c, l.m, l.round)
	t.Logf("%s: %d accounts, %d holds, %d acknowledged operations checked", when, len(l.m.accounts), len(l.m.holds), len(l.m.acked))
}

// ---------------------------------------------------------------------------

// TestSigtermUnderLoad: SIGTERM while 12 clients write. Every request in
// flight completes or is answered 503 (after the listener closes, new
// connections are refused), the process exits 0, and after a restart every
// acknowledged operation is there.
func TestSigtermUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	creditdBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	env := []string{"CREDITD_ADMIN_KEY=" + crashKey}
	args := []string{"--ready-probe-interval", faultProbeInterval, "--builtin-worker", "0"}
	srv := startServerArgs(t, data, args, env...)
	waitReadyz(t, srv.URL, http.StatusOK, 10*time.Second)

	c := newAPIClient(srv.URL, crashKey)
	l := newFaultLoad(t, "sigterm", []*apiClient{c}, false)
	l.start()
	defer func() {
		if !l.stopped() {
			l.halt()
		}
	}()
	waitFor(t, 10*time.Second, "1000 operations acknowledged", func() bool { return l.acked.Load() >= 1000 || t.Failed() })
	time.Sleep(time.Second) // more load: the signal must meet requests in flight
	sigAt := time.Now()
	srv.stop() // SIGTERM; requires exit status 0
	exitAfter := time.Since(sigAt)
	l.halt()
	c.close()
	if t.Failed() {
		return
	}
	for _, err := range l.errs {
		// A request is either answered, or was never taken: its connection
		// was refused once the listener closed (the client retries a
		// request with an Idempotency-Key whose idle connection the server
		// closed on a new one).
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Errorf("a request failed without an answer during the graceful stop: %v", err)
		}
	}
	t.Logf("SIGTERM after %d ops acknowledged (%d rejected with 402, %d answered 503, %d refused): exit 0 within %v",
		l.acked.Load(), l.rejected.Load(), l.unavailable.Load(), len(l.errs), exitAfter)
	if exitAfter > 5*time.Second {
		t.Errorf("creditd took %v to exit after SIGTERM", exitAfter)
	}
	runVerify(t, data, "after SIGTERM")

	srv = startServerArgs(t, data, args, env...)
	c = newAPIClient(srv.URL, crashKey)
	defer c.close()
	l.checkAfterFault(c, "after restart")
	runVerify(t, data, "after restart")
	srv.stop()
}

// TestPostgresRestartUnderLoad: two nodes on a private PostgreSQL cluster
// (never the shared server) under load from 12 clients; the cluster stops
// and starts again. During the outage both nodes' /readyz answer 503 and
// writes 503; afterwards both recover by themselves within seconds, nothing
// acknowledged is lost, operations that got 503 are retried with their key
// exactly once, the cross-node event bus carries events again, and verify
// is clean.
func TestPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes and a PostgreSQL cluster")
	}
	creditdBinary(t)
	cl := pgtest.NewCluster(t)
	dsn := cl.DSN(t)
	env := []string{"CREDITD_ADMIN_KEY=" + crashKey, "CREDITD_WORKER_KEY=sk_worker_fault_test_key_0123456789",
		"CREDITD_SESSION_SECRET=ss_fault_test_session_secret_0123456789"}
	args := []string{"--db", dsn, "--ready-probe-interval", faultProbeInterval, "--builtin-worker", "0"}
	dir := t.TempDir()
	nodeA := startServerArgs(t, filepath.Join(dir, "a"), args, env...)
	nodeB := startServerArgs(t, filepath.Join(dir, "b"), args, env...)
	for _, n := range []*serverProc{nodeA, nodeB} {
		waitReadyz(t, n.URL, http.StatusOK, 10*time.Second)
	}
	ca, cb := newAPIClient(nodeA.URL, crashKey), newAPIClient(nodeB.URL, crashKey)
	defer ca.close()
	defer cb.close()
	if w := storeWritable(t, ca); w != 1 {
		t.Fatalf("creditd_store_writable = %v before the outage, want 1", w)
	}

	l := newFaultLoad(t, "pgrestart", []*apiClient{ca, cb}, true)
	l.start()
	defer func() {
		if !l.stopped() {
			l.halt()
		}
	}()
	waitFor(t, 20*time.Second, "500 operations acknowledged", func() bool { return l.acked.Load() >= 500 || t.Failed() })

	stopAt := time.Now()
	cl.Stop(t)
	stopped := time.Since(stopAt)
	unready := map[string]time.Duration{}
	for name, n := range map[string]*serverProc{"a": nodeA, "b": nodeB} {
		unready[name] = waitReadyz(t, n.URL, http.StatusServiceUnavailable, 10*time.Second) + stopped
	}
	if w := storeWritable(t, ca); w != 0 {
		t.Errorf("creditd_store_writable = %v during the outage, want 0", w)
	}
	loggedNotReady(t, nodeA, "node a")
	loggedNotReady(t, nodeB, "node b")
	unavailable := l.unavailable.Load()
	waitFor(t, 10*time.Second, "writes answered 503 during the outage", func() bool { return l.unavailable.Load() > unavailable })
	// An outage of some length, as a restart by an operator takes: the
	// clients keep retrying meanwhile.
	time.Sleep(time.Until(stopAt.Add(faultOutage)))
	if s := readyzStatus(t, nodeB.URL); s != http.StatusServiceUnavailable {
		t.Errorf("node b's /readyz answered %d during the outage", s)
	}
	outage := time.Since(stopAt)

	startAt := time.Now()
	cl.Start(t)
	started := time.Since(startAt)
	ready := map[string]time.Duration{}
	for name, n := range map[string]*serverProc{"a": nodeA, "b": nodeB} {
		ready[name] = waitReadyz(t, n.URL, http.StatusOK, 15*time.Second) + started
	}
	acked := l.acked.Load()
	firstAck := waitFor(t, 15*time.Second, "writes acknowledged again after the restart", func() bool { return l.acked.Load() > acked+100 }) + started
	if w := storeWritable(t, cb); w != 1 {
		t.Errorf("creditd_store_writable = %v after the restart, want 1", w)
	}
	time.Sleep(500 * time.Millisecond) // load after the recovery
	l.halt()
	if t.Failed() {
		return
	}
	t.Logf("PostgreSQL down %v (stop took %v); /readyz 503 after a %v, b %v; up again after %v: /readyz 200 after a %v, b %v, 100 more acks after %v",
		outage, stopped, unready["a"], unready["b"], started, ready["a"], ready["b"], firstAck)
	t.Logf("load: %d acknowledged, %d rejected (402), %d answers of 503 (retried with their keys), %d transport errors",
		l.acked.Load(), l.rejected.Load(), l.unavailable.Load(), len(l.errs))

	// The bus reconnected: an event committed on one node reaches the
	// other's stream, both ways.
	busAB := busCrossesNodes(t, ca, cb, "bus-a-to-b")
	busBA := busCrossesNodes(t, cb, ca, "bus-b-to-a")
	t.Logf("event bus: crossing again %v (a→b) and %v (b→a) after the checks began, %v after PostgreSQL was back", busAB, busBA, time.Since(startAt))

	l.checkAfterFault(cb, "node b after the restart")
	checkModel(t, ca, l.m, l.round)
	checkEvents(t, ca, l.m, l.round)
	runVerifyArgs(t, "after the restart", "--db", dsn)
	nodeA.stop()
	nodeB.stop()
}

// busCrossesNodes creates account id through from, opens its event stream
// on to, and grants 1 credit through from every busGrantEvery until to's
// stream shows a balance that moved (a notice sent while to's listener is
// still reconnecting is lost: notices are hints), failing after 15 s. It
// returns how long after the first grant the first event crossed.
func busCrossesNodes(t *testing.T, from, to *apiClient, id string) time.Duration {
	t.Helper()
	const busGrantEvery = 250 * time.Millisecond
	r, err := from.do("PUT", "/v1/accounts/"+id, []byte(`{"plan":"free"}`), "")
	if err != nil || r.status != http.StatusCreated {
		t.Fatalf("PUT account %s: %d %s %v", id, r.status, r.body, err)
	}
	var bal wireBalance
	if err := from.getJSON("/v1/accounts/"+id+"/balance", &bal); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", to.base+"/v1/accounts/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+to.key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("event stream of %s: %v", id, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("event stream of %s: %d", id, resp.StatusCode)
	}
	balances := make(chan wireBalance, 16)
	go func() {
		defer close(balances)
		sc := bufio.NewScanner(resp.Body)
		event := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: ") && event == "balance":
				var b wireBalance
				if json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &b) == nil {
					balances <- b
				}
			}
		}
	}()
	if b, ok := <-balances; !ok || b.Available != bal.Available {
		t.Fatalf("event stream of %s on the other node: first balance %+v (open %v), want available %d", id, b, ok, bal.Available)
	}
	first, grants := time.Now(), 0
	tick := time.NewTicker(busGrantEvery)
	defer tick.Stop()
	for {
		r, err = from.do("POST", "/v1/accounts/"+id+"/grants", []byte(`{"amount":1,"source":"admin"}`), "")
		if err != nil || r.status != http.StatusCreated {
			t.Fatalf("grant to %s: %d %s %v", id, r.status, r.body, err)
		}
		grants++
	wait:
		select {
		case b, ok := <-balances:
			if !ok {
				t.Fatalf("%s: the other node's event stream ended (%v) before an event crossed; %d grants sent", id, ctx.Err(), grants)
			}
			if b.Available <= bal.Available {
				goto wait
			}
			took := time.Since(first)
			t.Logf("%s: a grant's balance event crossed nodes %v after the first grant (%d grants sent)", id, took, grants)
			return took
		case <-tick.C:
		}
	}
}

// mountTmpfs mounts a tmpfs of size bytes at a new directory for the test
// (unmounted at its end). Without root or mount rights it skips, except
// under CREDITD_CI=1, where it fails.
func mountTmpfs(t *testing.T, size int64) string {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("creditd-test", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size))
	if err != nil {
		msg := fmt.Sprintf("cannot mount a %d-byte tmpfs (needs root and the right to mount; uid %d): %v", size, os.Geteuid(), err)
		if os.Getenv("CREDITD_CI") == "1" {
			t.Fatalf("%s (CREDITD_CI=1, so this is a failure, not a skip)", msg)
		}
		t.Skip(msg + ": skipping")
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes zeros to path until the file system is full.
func fillDisk(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatalf("fill: %v", err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	var n int64
	for {
		k, err := f.Write(buf)
		n += int64(k)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			t.Fatalf("fill: %v", err)
		}
	}
}

// TestDiskFullUnderLoad: the SQLite data directory is on a small tmpfs.
// The disk is filled once on an idle node (/readyz follows the write probe)
// and once under load from 12 clients. Writes answer 503 and
// /readyz 503 while it is full; once the space is freed, writes succeed
// again within seconds without a restart; nothing acknowledged is lost
// (before and after a restart), and verify is clean.
func TestDiskFullUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	creditdBinary(t)
	mnt := mountTmpfs(t, 32<<20)
	data := filepath.Join(mnt, "data")
	env := []string{"CREDITD_ADMIN_KEY=" + crashKey}
	args := []string{"--ready-probe-interval", faultProbeInterval, "--builtin-worker", "0"}
	srv := startServerArgs(t, data, args, env...)
	waitReadyz(t, srv.URL, http.StatusOK, 10*time.Second)
	c := newAPIClient(srv.URL, crashKey)
	defer c.close()

	// An idle node learns of the full disk from its write probe alone, and
	// heals once the space is back.
	fill := filepath.Join(mnt, "fill")
	fillDisk(t, fill)
	idleUnready := waitReadyz(t, srv.URL, http.StatusServiceUnavailable, 5*time.Second)
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	idleReady := waitReadyz(t, srv.URL, http.StatusOK, 10*time.Second)
	t.Logf("idle: /readyz 503 within %v of the disk filling, 200 within %v of the space freed", idleUnready, idleReady)

	l := newFaultLoad(t, "diskfull", []*apiClient{c}, true)
	l.start()
	defer func() {
		if !l.stopped() {
			l.halt()
		}
	}()
	waitFor(t, 20*time.Second, "500 operations acknowledged", func() bool { return l.acked.Load() >= 500 || t.Failed() })

	fullAt := time.Now()
	filled := fillDisk(t, fill)
	unavailable := l.unavailable.Load()
	writes503 := waitFor(t, 10*time.Second, "writes answered 503 on the full disk", func() bool { return l.unavailable.Load() > unavailable })
	unready := waitReadyz(t, srv.URL, http.StatusServiceUnavailable, 10*time.Second)
	if w := storeWritable(t, c); w != 0 {
		t.Errorf("creditd_store_writable = %v on a full disk, want 0", w)
	}
	if s := readyzStatus(t, srv.URL); s != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz answered %d while the disk is full", s)
	}
	loggedNotReady(t, srv, "the server")
	// Liveness is unchanged: the process and its reads are fine.
	if r, err := c.do("GET", "/healthz", nil, ""); err != nil || r.status != http.StatusOK {
		t.Errorf("GET /healthz while the disk is full: %d %v, want 200", r.status, err)
	}
	// Lists need the tables to hold what the journal does: while they
	// cannot be written, a list answers (200 or 503) rather than hang.
	l.m.mu.Lock()
	var listed []string
	for id := range l.m.accounts {
		if len(listed) < 8 {
			listed = append(listed, id)
		}
	}
	l.m.mu.Unlock()
	for _, id := range listed {
		at := time.Now()
		r, err := c.do("GET", "/v1/accounts/"+id+"/entries", nil, "")
		if err != nil || r.status != http.StatusOK && r.status != http.StatusServiceUnavailable || time.Since(at) > 5*time.Second {
			t.Errorf("GET entries of %s on a full disk: %d %v after %v; want 200 or 503 at once", id, r.status, err, time.Since(at))
		}
	}
	// The disk stays full a while, with the clients retrying: the store
	// must not claim to take writes before there is space.
	time.Sleep(time.Until(fullAt.Add(faultOutage)))
	if s := readyzStatus(t, srv.URL); s != http.StatusServiceUnavailable {
		t.Errorf("GET /readyz answered %d while the disk is still full", s)
	}
	full := time.Since(fullAt)
	t.Logf("disk filled with %d bytes: writes 503 within %v, /readyz 503 within %v; freeing it after %v", filled, writes503, unready, full)

	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	ready := waitReadyz(t, srv.URL, http.StatusOK, 15*time.Second)
	acked := l.acked.Load()
	resumed := waitFor(t, 15*time.Second, "writes acknowledged again after the space was freed", func() bool { return l.acked.Load() > acked+100 })
	if w := storeWritable(t, c); w != 1 {
		t.Errorf("creditd_store_writable = %v after the space was freed, want 1", w)
	}
	time.Sleep(500 * time.Millisecond) // load after the recovery
	l.halt()
	if t.Failed() {
		return
	}
	t.Logf("space freed: /readyz 200 within %v, 100 more acks within %v, without a restart", ready, resumed+ready)
	t.Logf("load: %d acknowledged, %d rejected (402), %d answers of 503 (retried with their keys), %d transport errors",
		l.acked.Load(), l.rejected.Load(), l.unavailable.Load(), len(l.errs))

	l.checkAfterFault(c, "after the disk was freed, same process")
	runVerify(t, data, "while running after the disk was freed")
	srv.stop()
	runVerify(t, data, "after stop")
	srv = startServerArgs(t, data, args, env...)
	c2 := newAPIClient(srv.URL, crashKey)
	defer c2.close()
	checkModel(t, c2, l.m, l.round)
	checkEvents(t, c2, l.m, l.round)

	// A node stops cleanly while its disk is full (nothing may wait for
	// the tables for ever), and opens again once there is space.
	fillDisk(t, fill)
	waitReadyz(t, srv.URL, http.StatusServiceUnavailable, 5*time.Second)
	stopAt := time.Now()
	srv.stop()
	t.Logf("SIGTERM on a full disk: exit 0 within %v", time.Since(stopAt))
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	runVerify(t, data, "after a stop on a full disk")
	srv = startServerArgs(t, data, args, env...)
	c3 := newAPIClient(srv.URL, crashKey)
	defer c3.close()
	checkModel(t, c3, l.m, l.round)
	checkEvents(t, c3, l.m, l.round)
	srv.stop()
}
