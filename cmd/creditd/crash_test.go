package main

// Crash test: the real creditd binary under concurrent load is killed with
// SIGKILL, restarted on the same data directory, and checked: every
// acknowledged operation survived, in-flight operations replay with their
// Idempotency-Key exactly once, every account's books balance, and
// `creditd verify` passes (while running and after a graceful stop).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/promtext"
)

// ---------------------------------------------------------------------------
// Shared helpers (also used by cli_test.go): the binary, server processes,
// an HTTP client and a CLI runner.

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// creditdBinary builds the creditd command once per test run (a real
// binary, run as a separate process) and returns its path.
func creditdBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "creditd-test-bin-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "creditd")
		cmd := exec.Command("go", "build", "-o", buildBin, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// baseEnv is the test's environment without any CREDITD_* variable, so
// the caller's shell cannot change what the binary does.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CREDITD_") {
			env = append(env, kv)
		}
	}
	return env
}

// syncBuffer is a bytes.Buffer safe for a process's copy goroutine and the
// test to use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// serverProc is a running `creditd serve`.
type serverProc struct {
	t      *testing.T
	data   string
	cmd    *exec.Cmd
	stdout *syncBuffer
	stderr *syncBuffer
	done   chan struct{} // closed when the process has exited
	URL    string
	// Key is the admin key printed on stdout ("" when it came from
	// CREDITD_ADMIN_KEY); KeyFile is where the server said it stored it.
	Key, KeyFile string
}

var (
	listenRE = regexp.MustCompile(`creditd listening on (http://\S+)\n`)
	keyRE    = regexp.MustCompile(`admin key: (\S+) \(stored in ([^)]+)\)\n`)
	envKeyRE = regexp.MustCompile(`admin key: from CREDITD_ADMIN_KEY\n`)
)

// startServer starts `creditd serve --addr 127.0.0.1:0 --data data` with
// env added to the cleaned environment, parses the listen URL (and the
// admin key line) from stdout, and waits until GET /healthz answers 200.
func startServer(t *testing.T, data string, env ...string) *serverProc {
	t.Helper()
	return startServerArgs(t, data, nil, env...)
}

// startServerArgs is startServer with more arguments of serve (a later
// --addr wins).
func startServerArgs(t *testing.T, data string, args []string, env ...string) *serverProc {
	t.Helper()
	bin := creditdBinary(t)
	p := &serverProc{t: t, data: data, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--log-level", "warn"}, args...)...)
	p.cmd.Env = append(baseEnv(), env...)
	p.cmd.Stdout = p.stdout
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start creditd serve: %v", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("creditd serve (pid %d) stdout:\n%s\nstderr (tail):\n%s", p.cmd.Process.Pid, p.stdout.String(), tail(p.stderr.String(), 6000))
		}
	})

	deadline := time.Now().Add(20 * time.Second)
	envKey := false
	for _, kv := range env {
		envKey = envKey || strings.HasPrefix(kv, "CREDITD_ADMIN_KEY=") && len(kv) > len("CREDITD_ADMIN_KEY=")
	}
	for {
		out := p.stdout.String()
		if m := listenRE.FindStringSubmatch(out); m != nil && p.URL == "" {
			p.URL = m[1]
		}
		keyDone := false
		if envKey {
			keyDone = envKeyRE.MatchString(out)
		} else if m := keyRE.FindStringSubmatch(out); m != nil {
			p.Key, p.KeyFile, keyDone = m[1], m[2], true
		}
		if p.URL != "" && keyDone {
			break
		}
		select {
		case <-p.done:
			t.Fatalf("creditd serve exited before listening (%v)\nstdout:\n%s\nstderr:\n%s", p.cmd.ProcessState, out, tail(p.stderr.String(), 4000))
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("creditd serve printed no listen URL / admin key line within 20s\nstdout:\n%s\nstderr:\n%s", out, tail(p.stderr.String(), 4000))
		}
	}

	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := hc.Get(p.URL + "/healthz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s/healthz not 200 within 20s (last err %v)", p.URL, err)
		}
		select {
		case <-p.done:
			t.Fatalf("creditd serve exited while waiting for /healthz (%v)\nstderr:\n%s", p.cmd.ProcessState, tail(p.stderr.String(), 4000))
		case <-time.After(5 * time.Millisecond):
		}
	}
	hc.CloseIdleConnections()
	return p
}

// waitExit waits for the process to exit.
func (p *serverProc) waitExit(timeout time.Duration) *os.ProcessState {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState
	case <-time.After(timeout):
		p.t.Fatalf("creditd serve (pid %d) did not exit within %v", p.cmd.Process.Pid, timeout)
		return nil
	}
}

// kill9 kills the server with SIGKILL and waits for it to be gone.
func (p *serverProc) kill9() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("SIGKILL: %v", err)
	}
	st := p.waitExit(10 * time.Second)
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		p.t.Fatalf("server exited with %v before SIGKILL reached it\nstderr:\n%s", st, tail(p.stderr.String(), 4000))
	}
}

// stop shuts the server down with SIGTERM and requires a clean exit.
func (p *serverProc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
	st := p.waitExit(25 * time.Second)
	if st.ExitCode() != 0 {
		p.t.Fatalf("creditd serve exited with %v after SIGTERM\nstderr:\n%s", st, tail(p.stderr.String(), 4000))
	}
}

// runCLI runs the creditd binary with args and env (added to the cleaned
// environment) and returns its output and exit code.
func runCLI(t *testing.T, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	stdout, stderr, code, err := execCLI(creditdBinary(t), env, args...)
	if err != nil {
		t.Fatal(err)
	}
	return stdout, stderr, code
}

// execCLI is runCLI for any goroutine: it reports failures to run the
// binary as an error.
func execCLI(bin string, env []string, args ...string) (stdout, stderr string, code int, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(baseEnv(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return o.String(), e.String(), -1, fmt.Errorf("creditd %s timed out", strings.Join(args, " "))
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		return o.String(), e.String(), -1, fmt.Errorf("run creditd %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code, nil
}

// runVerify runs `creditd verify --data data` and requires exit 0 with no
// MISMATCH line.
func runVerify(t *testing.T, data, when string) {
	t.Helper()
	out, errOut, code := runCLI(t, nil, "verify", "--data", data)
	if code != 0 || strings.Contains(out, "MISMATCH") || !strings.Contains(out, ": 0 problems") {
		t.Errorf("verify %s: exit %d\nstdout:\n%s\nstderr:\n%s", when, code, tail(out, 4000), errOut)
		return
	}
	t.Logf("verify %s: %s", when, strings.TrimSpace(out))
}

// apiClient talks to the JSON API.
type apiClient struct {
	base, key string
	hc        *http.Client
}

func newAPIClient(base, key string) *apiClient {
	tr := &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64, IdleConnTimeout: 30 * time.Second}
	return &apiClient{base: base, key: key, hc: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

type apiResp struct {
	status   int
	replayed bool
	body     []byte
}

func (c *apiClient) do(method, path string, body []byte, idemKey string) (apiResp, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return apiResp{}, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if idemKey != "" {
		req.Header.Set("Idempotency-Key", idemKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return apiResp{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return apiResp{}, err
	}
	return apiResp{status: resp.StatusCode, replayed: resp.Header.Get("Idempotent-Replayed") == "true", body: b}, nil
}

// getJSON GETs path, requires 200 and decodes the body into v.
func (c *apiClient) getJSON(path string, v any) error {
	r, err := c.do("GET", path, nil, "")
	if err != nil {
		return err
	}
	if r.status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, r.status, bytes.TrimSpace(r.body))
	}
	return json.Unmarshal(r.body, v)
}

func (c *apiClient) close() { c.hc.CloseIdleConnections() }

// ---------------------------------------------------------------------------
// The model of what the acknowledged operations imply.

const (
	opAccount = "account"
	opGrant   = "grant"
	opReserve = "reserve"
	opCapture = "capture"
	opRelease = "release"
	opJob     = "job"    // a generate job, which no worker serves: it stays queued
	opCancel  = "cancel" // cancels one of those
)

// crashOp is one mutating request and what came of it.
type crashOp struct {
	worker  int
	kind    string
	method  string
	path    string
	key     string
	body    []byte
	account string
	hold    string // capture, release
	job     string // cancel
	resp    apiResp
	err     error
}

func (o *crashOp) String() string {
	return fmt.Sprintf("%s %s %s (key %s)", o.method, o.path, o.body, o.key)
}

type holdModel struct {
	id, account, action string
	quantity, amount    int64
	unit                int64
	status              string
	capturedQty         int64
	capturedAmt         int64
}

type accountModel struct {
	id     string
	grants map[string]int64 // admin grant id → amount
	holds  []string
}

type ledgerModel struct {
	mu       sync.Mutex
	accounts map[string]*accountModel
	holds    map[string]*holdModel
	jobs     map[string]*jobModel
	acked    []*crashOp // every operation acknowledged with 2xx
}

type jobModel struct {
	id, account, hold, status string
}

// workerState is what one load goroutine owns: its accounts and their
// pending holds. Only that goroutine touches it during load, only the test
// goroutine between loads.
type workerState struct {
	accounts []string
	pending  []string
	queued   []string // jobs
	seq      int
}

type wireHold struct {
	ID               string `json:"id"`
	AccountID        string `json:"account_id"`
	Action           string `json:"action"`
	Quantity         int64  `json:"quantity"`
	UnitPrice        int64  `json:"unit_price"`
	Amount           int64  `json:"amount"`
	Status           string `json:"status"`
	CapturedQuantity int64  `json:"captured_quantity"`
	CapturedAmount   int64  `json:"captured_amount"`
	ReleaseReason    string `json:"release_reason"`
}

type wireGrant struct {
	ID        string `json:"id"`
	AccountID string `json:"account_id"`
	Source    string `json:"source"`
	Amount    int64  `json:"amount"`
	Remaining int64  `json:"remaining"`
}

type wireLeg struct {
	GrantID string `json:"grant_id"`
	From    string `json:"from"`
	To      string `json:"to"`
	Credits int64  `json:"credits"`
}

type wireEntry struct {
	ID        int64     `json:"id"`
	AccountID string    `json:"account_id"`
	Type      string    `json:"type"`
	Amount    int64     `json:"amount"`
	Source    string    `json:"source"`
	GrantID   string    `json:"grant_id"`
	HoldID    string    `json:"hold_id"`
	Quantity  int64     `json:"quantity"`
	Legs      []wireLeg `json:"legs"`
}

type wireBalance struct {
	AccountID string `json:"account_id"`
	Available int64  `json:"available"`
	Held      int64  `json:"held"`
}

var unitPrice = map[string]int64{"generate": 5, "video": 60}

// apply records an answered operation in the model. A 2xx answer must
// match the request; the only other acceptable answer is 402 for a
// reserve (not enough credits), which changes nothing.
func (m *ledgerModel) apply(ws *workerState, o *crashOp, r apiResp) error {
	ok2xx := r.status >= 200 && r.status < 300
	if !ok2xx {
		if (o.kind == opReserve || o.kind == opJob) && r.status == http.StatusPaymentRequired {
			return nil
		}
		return fmt.Errorf("unexpected answer %d %s to %v", r.status, bytes.TrimSpace(r.body), o)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch o.kind {
	case opAccount:
		var a struct {
			ID   string `json:"id"`
			Plan string `json:"plan"`
		}
		if err := json.Unmarshal(r.body, &a); err != nil || r.status != http.StatusCreated || a.ID != o.account || a.Plan != "free" {
			return fmt.Errorf("account create %v answered %d %s", o, r.status, r.body)
		}
		if m.accounts[a.ID] != nil {
			return fmt.Errorf("account %s created twice", a.ID)
		}
		m.accounts[a.ID] = &accountModel{id: a.ID, grants: map[string]int64{}}
		ws.accounts = append(ws.accounts, a.ID)
	case opGrant:
		var g wireGrant
		var req struct {
			Amount int64 `json:"amount"`
		}
		_ = json.Unmarshal(o.body, &req)
		if err := json.Unmarshal(r.body, &g); err != nil || r.status != http.StatusCreated || g.ID == "" ||
			g.AccountID != o.account || g.Amount != req.Amount || g.Source != "admin" {
			return fmt.Errorf("grant %v answered %d %s", o, r.status, r.body)
		}
		am := m.accounts[o.account]
		if _, dup := am.grants[g.ID]; dup {
			return fmt.Errorf("grant %s answered twice", g.ID)
		}
		am.grants[g.ID] = g.Amount
	case opReserve:
		var h wireHold
		var req struct {
			Action   string `json:"action"`
			Quantity int64  `json:"quantity"`
		}
		_ = json.Unmarshal(o.body, &req)
		if err := json.Unmarshal(r.body, &h); err != nil || r.status != http.StatusCreated || h.ID == "" ||
			h.AccountID != o.account || h.Status != "pending" || h.Quantity != req.Quantity ||
			h.Amount != unitPrice[req.Action]*req.Quantity || h.UnitPrice != unitPrice[req.Action] {
			return fmt.Errorf("reserve %v answered %d %s", o, r.status, r.body)
		}
		if m.holds[h.ID] != nil {
			return fmt.Errorf("hold %s answered twice", h.ID)
		}
		m.holds[h.ID] = &holdModel{id: h.ID, account: o.account, action: h.Action, quantity: h.Quantity, amount: h.Amount, unit: h.UnitPrice, status: "pending"}
		m.accounts[o.account].holds = append(m.accounts[o.account].holds, h.ID)
		ws.pending = append(ws.pending, h.ID)
	case opJob:
		var j struct {
			ID        string `json:"id"`
			AccountID string `json:"account_id"`
			Status    string `json:"status"`
			HoldID    string `json:"hold_id"`
			Quantity  int64  `json:"quantity"`
			Cost      int64  `json:"cost"`
		}
		if err := json.Unmarshal(r.body, &j); err != nil || r.status != http.StatusCreated || j.ID == "" || j.HoldID == "" ||
			j.AccountID != o.account || j.Status != "queued" || j.Cost != 5*j.Quantity {
			return fmt.Errorf("job %v answered %d %s", o, r.status, r.body)
		}
		if m.jobs[j.ID] != nil || m.holds[j.HoldID] != nil {
			return fmt.Errorf("job %s answered twice", j.ID)
		}
		m.jobs[j.ID] = &jobModel{id: j.ID, account: o.account, hold: j.HoldID, status: "queued"}
		m.holds[j.HoldID] = &holdModel{id: j.HoldID, account: o.account, action: "generate", quantity: j.Quantity, amount: j.Cost, unit: 5, status: "pending"}
		m.accounts[o.account].holds = append(m.accounts[o.account].holds, j.HoldID)
		ws.queued = append(ws.queued, j.ID)
	case opCancel:
		var j struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		}
		jm := m.jobs[o.job]
		if err := json.Unmarshal(r.body, &j); err != nil || r.status != http.StatusOK || j.ID != o.job || j.Status != "cancelled" {
			return fmt.Errorf("cancel %v answered %d %s", o, r.status, r.body)
		}
		jm.status = "cancelled"
		m.holds[jm.hold].status = "released"
		for i, id := range ws.queued {
			if id == o.job {
				ws.queued = append(ws.queued[:i], ws.queued[i+1:]...)
				break
			}
		}
	case opCapture, opRelease:
		var h wireHold
		var req struct {
			Quantity int64 `json:"quantity"`
		}
		_ = json.Unmarshal(o.body, &req)
		hm := m.holds[o.hold]
		want := "released"
		if o.kind == opCapture {
			want = "captured"
		}
		if err := json.Unmarshal(r.body, &h); err != nil || r.status != http.StatusOK || h.ID != o.hold || h.Status != want ||
			(o.kind == opCapture && (h.CapturedQuantity != req.Quantity || h.CapturedAmount != req.Quantity*hm.unit)) ||
			(o.kind == opRelease && (h.CapturedQuantity != 0 || h.CapturedAmount != 0)) {
			return fmt.Errorf("%s %v answered %d %s", o.kind, o, r.status, r.body)
		}
		hm.status, hm.capturedQty, hm.capturedAmt = h.Status, h.CapturedQuantity, h.CapturedAmount
		for i, id := range ws.pending {
			if id == o.hold {
				ws.pending = append(ws.pending[:i], ws.pending[i+1:]...)
				break
			}
		}
	}
	m.acked = append(m.acked, o)
	return nil
}

var timezones = []string{"UTC", "Europe/Berlin", "America/New_York", "Asia/Tokyo", "Pacific/Kiritimati"}

// nextOp picks worker w's next operation on the accounts and holds it owns.
func (m *ledgerModel) nextOp(w int, ws *workerState, rng *rand.Rand, run string, round int) *crashOp {
	ws.seq++
	o := &crashOp{worker: w, key: fmt.Sprintf("crash-%s-r%d-w%02d-%05d", run, round, w, ws.seq)}
	p := rng.Float64()
	switch {
	case len(ws.accounts) == 0 || p < 0.08:
		o.kind, o.method = opAccount, "PUT"
		o.account = fmt.Sprintf("acct-r%d-w%02d-%04d", round, w, ws.seq)
		o.path = "/v1/accounts/" + o.account
		o.body = mustMarshal(map[string]string{"plan": "free", "timezone": timezones[rng.IntN(len(timezones))]})
	case p < 0.25:
		o.kind, o.method = opGrant, "POST"
		o.account = ws.accounts[rng.IntN(len(ws.accounts))]
		o.path = "/v1/accounts/" + o.account + "/grants"
		o.body = mustMarshal(map[string]any{"amount": 1 + rng.IntN(200), "source": "admin"})
	case p < 0.29:
		o.kind, o.method, o.path = opJob, "POST", "/v1/jobs"
		o.account = ws.accounts[rng.IntN(len(ws.accounts))]
		o.body = mustMarshal(map[string]any{"account_id": o.account, "action": "generate", "quantity": 1 + rng.IntN(2),
			"params": map[string]any{"prompt": "a crash test"}})
	case p < 0.32 && len(ws.queued) > 0:
		o.kind, o.method = opCancel, "POST"
		o.job = ws.queued[rng.IntN(len(ws.queued))]
		m.mu.Lock()
		o.account = m.jobs[o.job].account
		m.mu.Unlock()
		o.path = "/v1/jobs/" + o.job + "/cancel"
		o.body = []byte("{}")
	case p < 0.70 || len(ws.pending) == 0:
		o.kind, o.method, o.path = opReserve, "POST", "/v1/holds"
		o.account = ws.accounts[rng.IntN(len(ws.accounts))]
		action, qty := "generate", 1+rng.IntN(5)
		if rng.IntN(8) == 0 {
			action, qty = "video", 1
		}
		o.body = mustMarshal(map[string]any{"account_id": o.account, "action": action, "quantity": qty})
	default:
		o.hold = ws.pending[rng.IntN(len(ws.pending))]
		m.mu.Lock()
		hm := m.holds[o.hold]
		m.mu.Unlock()
		o.account = hm.account
		o.method = "POST"
		if rng.IntN(10) < 7 {
			o.kind, o.path = opCapture, "/v1/holds/"+o.hold+"/capture"
			o.body = mustMarshal(map[string]any{"quantity": rng.Int64N(hm.quantity + 1)})
		} else {
			o.kind, o.path = opRelease, "/v1/holds/"+o.hold+"/release"
			o.body = mustMarshal(map[string]any{"reason": []string{"failed", "cancelled", "error", "interrupted"}[rng.IntN(4)]})
		}
	}
	return o
}

func mustMarshal(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// ---------------------------------------------------------------------------
// The test.

const (
	crashWorkers = 16
	crashRounds  = 3
	crashKey     = "sk_admin_crash_test_key_0123456789"
)

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test starts and kills real processes")
	}
	creditdBinary(t)
	data := filepath.Join(t.TempDir(), "data")
	env := []string{"CREDITD_ADMIN_KEY=" + crashKey}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	run := fmt.Sprintf("%x", seed&0xffffff)

	m := &ledgerModel{accounts: map[string]*accountModel{}, holds: map[string]*holdModel{}, jobs: map[string]*jobModel{}}
	workers := make([]*workerState, crashWorkers)
	rngs := make([]*rand.Rand, crashWorkers)
	for i := range workers {
		workers[i] = &workerState{}
		rngs[i] = rand.New(rand.NewPCG(seed, uint64(i)))
	}
	master := rand.New(rand.NewPCG(seed, 1<<32))

	srv := startServer(t, data, env...)
	compacted := false // some round's journal dropped rewritten rows before its stop
	// Rounds 1..crashRounds end in kill -9; one more ends in a graceful
	// SIGTERM under the same load, which must keep the same promises.
	for round := 1; round <= crashRounds+1; round++ {
		graceful := round > crashRounds
		c := newAPIClient(srv.URL, crashKey)
		killAfter := 300*time.Millisecond + time.Duration(master.Int64N(int64(500*time.Millisecond)))
		inflight, acked, rejected, superseded := runCrashLoad(t, c, m, workers, rngs, run, round, killAfter, srv, round == 2, graceful)
		if superseded > 0 {
			compacted = true
		}
		c.close()
		if t.Failed() {
			return
		}
		t.Logf("round %d (graceful %v): stopped after %v with %d ops acknowledged, %d rejected (402), %d in flight, %v pending rows dropped as rewritten",
			round, graceful, killAfter, acked, rejected, len(inflight), superseded)
		if acked == 0 {
			t.Fatalf("round %d: no operation was acknowledged before the kill", round)
		}

		srv = startServer(t, data, env...)
		c = newAPIClient(srv.URL, crashKey)
		replayInflight(t, c, m, workers, inflight, round)
		replayAcked(t, c, m, master, 64)
		checkModel(t, c, m, round)
		checkEvents(t, c, m, round)
		runVerify(t, data, fmt.Sprintf("while running after crash %d", round))
		c.close()
		if t.Failed() {
			return
		}
	}
	srv.stop()
	if !compacted {
		t.Errorf("no round dropped a rewritten pending row before its stop: the crashes did not cover the journal's compaction")
	}
	runVerify(t, data, "after graceful stop")
	t.Logf("final: %d accounts, %d holds, %d acknowledged operations", len(m.accounts), len(m.holds), len(m.acked))
}

// runCrashLoad drives concurrent load against srv, kills it with SIGKILL
// (or with graceful, stops it with SIGTERM) after killAfter, and returns the operations that were in flight (or
// failed) when it died. With verifyDuringLoad it also runs `creditd verify`
// against the live database while the load runs.
func runCrashLoad(t *testing.T, c *apiClient, m *ledgerModel, workers []*workerState, rngs []*rand.Rand,
	run string, round int, killAfter time.Duration, srv *serverProc, verifyDuringLoad, graceful bool) (inflight []*crashOp, acked, rejected int, superseded float64) {
	t.Helper()
	var wg sync.WaitGroup
	defer wg.Wait() // also when a check below fails the test
	// Safety net: if the kill somehow did not stop the server, stop anyway.
	ctx, cancel := context.WithTimeout(context.Background(), killAfter+10*time.Second)
	defer cancel()
	var (
		mu     sync.Mutex
		nAcked = make([]int, len(workers))
		nRej   = make([]int, len(workers))
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ws, rng := workers[w], rngs[w]
			for ctx.Err() == nil {
				o := m.nextOp(w, ws, rng, run, round)
				r, err := c.do(o.method, o.path, o.body, o.key)
				if err != nil || r.status >= 500 {
					// Not acknowledged: the server died with it in flight (or
					// could not commit it). Replayed after the restart.
					o.resp, o.err = r, err
					mu.Lock()
					inflight = append(inflight, o)
					mu.Unlock()
					return
				}
				o.resp = r
				if err := m.apply(ws, o, r); err != nil {
					t.Errorf("round %d: %v", round, err)
					return
				}
				if r.status >= 300 {
					nRej[w]++
				} else {
					nAcked[w]++
				}
			}
		}()
	}
	if verifyDuringLoad {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(killAfter / 3)
			out, errOut, code, err := execCLI(buildBin, nil, "verify", "--data", srv.data)
			if err != nil || code != 0 || strings.Contains(out, "MISMATCH") {
				t.Errorf("verify during load: exit %d (%v)\nstdout:\n%s\nstderr:\n%s", code, err, tail(out, 4000), errOut)
			} else {
				t.Logf("verify during load: %s", strings.TrimSpace(out))
			}
		}()
	}
	time.Sleep(killAfter) // bounded real-time load phase, then the crash
	// Pending rows that the journal dropped from memory because later
	// batches rewrote them (compaction): the crash must not lose them.
	superseded = scrapeMetric(t, c, "creditd_sqlite_journal_superseded_rows_total")
	if graceful {
		srv.stop()
	} else {
		srv.kill9()
	}
	wg.Wait()
	// The crashed database, before any restart recovers it, must verify too
	// (verify opens it read-only and reads the WAL as it was left).
	runVerify(t, srv.data, fmt.Sprintf("after round %d's stop, before restart", round))
	if ctx.Err() != nil {
		t.Errorf("round %d: load did not stop after the kill", round)
	}
	for w := range workers {
		acked += nAcked[w]
		rejected += nRej[w]
	}
	return inflight, acked, rejected, superseded
}

// scrapeMetric reads one unlabelled sample from the server's /metrics (-1
// if it cannot).
func scrapeMetric(t *testing.T, c *apiClient, name string) float64 {
	r, err := c.do("GET", "/metrics", nil, "")
	if err != nil || r.status != http.StatusOK {
		t.Logf("scrape %s: %d %v", name, r.status, err)
		return -1
	}
	mfs, err := promtext.Parse(bytes.NewReader(r.body))
	if err != nil {
		t.Logf("scrape %s: %v", name, err)
		return -1
	}
	if v, ok := mfs.Value(name); ok {
		return v
	}
	t.Logf("scrape: no %s", name)
	return -1
}

// replayInflight re-sends every in-flight operation with its
// Idempotency-Key: it must either get the stored response (the operation
// had committed) or be performed now, and a second replay must return the
// same stored response, so it happened exactly once.
func replayInflight(t *testing.T, c *apiClient, m *ledgerModel, workers []*workerState, inflight []*crashOp, round int) {
	t.Helper()
	committed := 0
	for _, o := range inflight {
		r1, err := c.do(o.method, o.path, o.body, o.key)
		if err != nil {
			t.Fatalf("round %d: replay of in-flight %v: %v", round, o, err)
		}
		o.resp, o.err = r1, nil
		if err := m.apply(workers[o.worker], o, r1); err != nil {
			t.Errorf("round %d: replay of in-flight op: %v", round, err)
			continue
		}
		if r1.replayed {
			committed++
		}
		r2, err := c.do(o.method, o.path, o.body, o.key)
		if err != nil {
			t.Fatalf("round %d: second replay of %v: %v", round, o, err)
		}
		if r1.status >= 300 {
			// 402: nothing was stored; the state is unchanged, so the
			// answer is the same.
			if r2.status != r1.status {
				t.Errorf("round %d: %v answered %d, then %d", round, o, r1.status, r2.status)
			}
			continue
		}
		if !r2.replayed || r2.status != r1.status || !bytes.Equal(r2.body, r1.body) {
			t.Errorf("round %d: second replay of %v is not the stored response:\nfirst  %d replayed=%v %s\nsecond %d replayed=%v %s",
				round, o, r1.status, r1.replayed, r1.body, r2.status, r2.replayed, r2.body)
		}
	}
	t.Logf("round %d: replayed %d in-flight ops: %d had committed before the crash, %d performed now", round, len(inflight), committed, len(inflight)-committed)
}

// replayAcked re-sends up to n acknowledged operations (all rounds so far):
// each must get back exactly the response it was acknowledged with.
func replayAcked(t *testing.T, c *apiClient, m *ledgerModel, rng *rand.Rand, n int) {
	t.Helper()
	ops := m.acked
	for i := 0; i < n && len(ops) > 0; i++ {
		o := ops[rng.IntN(len(ops))]
		r, err := c.do(o.method, o.path, o.body, o.key)
		if err != nil {
			t.Fatalf("replay of acknowledged %v: %v", o, err)
		}
		if !r.replayed || r.status != o.resp.status || !bytes.Equal(r.body, o.resp.body) {
			t.Errorf("replay of acknowledged %v:\nacknowledged %d %s\nreplay       %d replayed=%v %s",
				o, o.resp.status, o.resp.body, r.status, r.replayed, r.body)
		}
	}
}

// checkModel checks every account and hold of the model against the
// restarted server.
func checkModel(t *testing.T, c *apiClient, m *ledgerModel, round int) {
	t.Helper()
	jobs := make(chan func(), 64)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				j()
			}
		}()
	}
	for _, am := range m.accounts {
		jobs <- func() { checkAccount(t, c, m, am, round) }
	}
	for _, hm := range m.holds {
		jobs <- func() {
			var h wireHold
			if err := c.getJSON("/v1/holds/"+hm.id, &h); err != nil {
				t.Errorf("round %d: acknowledged hold %s: %v", round, hm.id, err)
				return
			}
			if h.Status != hm.status || h.AccountID != hm.account || h.Amount != hm.amount ||
				h.CapturedQuantity != hm.capturedQty || h.CapturedAmount != hm.capturedAmt {
				t.Errorf("round %d: hold %s is %s (captured %d for %d credits, amount %d), acknowledged %s (captured %d for %d, amount %d)",
					round, hm.id, h.Status, h.CapturedQuantity, h.CapturedAmount, h.Amount, hm.status, hm.capturedQty, hm.capturedAmt, hm.amount)
			}
		}
	}
	close(jobs)
	wg.Wait()
}

// checkEvents: the webhook events are exactly the ledger's changes across
// the crashes. Every acknowledged account has one account.created and one
// grant.created for its signup credits, every acknowledged admin grant one
// grant.created, every acknowledged job cancellation one job.cancelled; no
// event names an account, grant or job the ledger lacks; no event id
// appears twice.
func checkEvents(t *testing.T, c *apiClient, m *ledgerModel, round int) {
	t.Helper()
	type wireEvent struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		AccountID string `json:"account_id"`
		Data      struct {
			AccountID string `json:"account_id"`
			Grant     struct {
				ID     string `json:"id"`
				Source string `json:"source"`
			} `json:"grant"`
			Job struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"job"`
		} `json:"data"`
	}
	var evs []wireEvent
	cursor := ""
	for {
		var page struct {
			Data       []wireEvent `json:"data"`
			HasMore    bool        `json:"has_more"`
			NextCursor string      `json:"next_cursor"`
		}
		path := "/v1/events?limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if err := c.getJSON(path, &page); err != nil {
			t.Fatalf("round %d: list events: %v", round, err)
		}
		evs = append(evs, page.Data...)
		if !page.HasMore {
			break
		}
		cursor = page.NextCursor
	}
	seen := map[string]bool{}
	created := map[string]int{}
	signups := map[string]int{}
	grants := map[string]int{}
	ended := map[string]int{}
	for _, ev := range evs {
		if seen[ev.ID] {
			t.Errorf("round %d: event %s listed twice", round, ev.ID)
		}
		seen[ev.ID] = true
		if !strings.HasPrefix(ev.AccountID, "acct-") {
			continue // a probe of the test's own (e.g. the event bus's), outside the model
		}
		am := m.accounts[ev.AccountID]
		if am == nil || ev.Data.AccountID != ev.AccountID {
			t.Errorf("round %d: %s event %s of account %q, which no acknowledged operation created", round, ev.Type, ev.ID, ev.AccountID)
			continue
		}
		switch ev.Type {
		case "account.created":
			created[ev.AccountID]++
		case "grant.created":
			switch ev.Data.Grant.Source {
			case "signup":
				signups[ev.AccountID]++
			case "admin":
				if _, ok := am.grants[ev.Data.Grant.ID]; !ok {
					t.Errorf("round %d: grant.created %s of grant %s, which no acknowledged operation made", round, ev.ID, ev.Data.Grant.ID)
				}
				grants[ev.Data.Grant.ID]++
			}
		case "job.cancelled":
			jm := m.jobs[ev.Data.Job.ID]
			if jm == nil || jm.status != "cancelled" || ev.Data.Job.Status != "cancelled" {
				t.Errorf("round %d: job.cancelled %s of job %s, which no acknowledged operation cancelled", round, ev.ID, ev.Data.Job.ID)
			}
			ended[ev.Data.Job.ID]++
		case "job.succeeded", "job.failed", "job.interrupted":
			t.Errorf("round %d: %s of job %s: no job of the test ends so", round, ev.Type, ev.Data.Job.ID)
		}
	}
	for id, jm := range m.jobs {
		if want := map[bool]int{true: 1}[jm.status == "cancelled"]; ended[id] != want {
			t.Errorf("round %d: job %s (%s) has %d job.cancelled events, want %d", round, id, jm.status, ended[id], want)
		}
	}
	for id, am := range m.accounts {
		if created[id] != 1 || signups[id] != 1 {
			t.Errorf("round %d: account %s has %d account.created and %d signup grant.created events, want 1 each", round, id, created[id], signups[id])
		}
		for g := range am.grants {
			if grants[g] != 1 {
				t.Errorf("round %d: acknowledged grant %s has %d grant.created events, want 1", round, g, grants[g])
			}
		}
	}
	cancelled := 0
	for _, n := range ended {
		cancelled += n
	}
	t.Logf("round %d: %d events, each of them a change of the ledger (%d jobs, %d cancelled)", round, len(evs), len(m.jobs), cancelled)
}

// checkAccount compares one account's entries and balance with the model:
// the admin grants and holds in the ledger are exactly the acknowledged
// (or replayed) ones, captures charge what was acknowledged, and
// available + held + charged + expired = everything granted.
func checkAccount(t *testing.T, c *apiClient, m *ledgerModel, am *accountModel, round int) {
	var acct struct {
		ID string `json:"id"`
	}
	if err := c.getJSON("/v1/accounts/"+am.id, &acct); err != nil || acct.ID != am.id {
		t.Errorf("round %d: acknowledged account %s: %v (got id %q)", round, am.id, err, acct.ID)
		return
	}
	// Entries and balance must be of the same moment. Nothing writes now,
	// but a daily allowance falling due at a local midnight would: read the
	// entries around the balance and retry if they moved.
	var (
		entries []wireEntry
		bal     wireBalance
	)
	for attempt := 0; ; attempt++ {
		before, err := listAllEntries(c, am.id)
		if err == nil {
			err = c.getJSON("/v1/accounts/"+am.id+"/balance", &bal)
		}
		if err == nil {
			entries, err = listAllEntries(c, am.id)
		}
		if err != nil {
			t.Errorf("round %d: account %s: %v", round, am.id, err)
			return
		}
		if len(entries) == len(before) || attempt == 2 {
			break
		}
	}

	bad := func(format string, args ...any) {
		t.Errorf("round %d: account %s: %s", round, am.id, fmt.Sprintf(format, args...))
	}
	var (
		signups, dailies        int
		granted, charged, expir int64
		adminGrants             = map[string]int64{}
		holdEntries             = map[string]int64{}
		captures                = map[string]int64{}
		releases                = map[string]int{}
	)
	for _, e := range entries {
		if e.AccountID != am.id {
			bad("entry %d belongs to %s", e.ID, e.AccountID)
		}
		for _, l := range e.Legs {
			if l.To == "expired" {
				expir += l.Credits
			}
		}
		switch e.Type {
		case "grant":
			granted += e.Amount
			switch e.Source {
			case "signup":
				signups++
				if e.Amount != 30 {
					bad("signup grant of %d credits", e.Amount)
				}
			case "admin":
				if _, dup := adminGrants[e.GrantID]; dup {
					bad("grant %s has two grant entries", e.GrantID)
				}
				adminGrants[e.GrantID] = e.Amount
			default:
				bad("unexpected grant entry from source %q", e.Source)
			}
		case "daily_refresh":
			granted += e.Amount
			dailies++
			if e.Amount != 15 {
				bad("daily refresh of %d credits", e.Amount)
			}
		case "hold":
			if _, dup := holdEntries[e.HoldID]; dup {
				bad("hold %s has two hold entries", e.HoldID)
			}
			holdEntries[e.HoldID] = e.Amount
		case "capture":
			if _, dup := captures[e.HoldID]; dup {
				bad("hold %s captured twice", e.HoldID)
			}
			captures[e.HoldID] = e.Amount
			charged += e.Amount
		case "release":
			releases[e.HoldID]++
		case "expiry":
			if e.HoldID != "" {
				bad("hold %s expired (ttl is 600s)", e.HoldID)
			}
		default:
			bad("unexpected entry type %q", e.Type)
		}
	}
	if signups != 1 {
		bad("%d signup grants", signups)
	}
	if dailies < 1 {
		bad("no daily allowance")
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	var wantGranted, wantHeld, wantCharged int64 = 30 + 15*int64(dailies), 0, 0
	for id, amt := range am.grants {
		wantGranted += amt
		if got, ok := adminGrants[id]; !ok {
			bad("acknowledged grant %s (%d credits) is missing from the ledger", id, amt)
		} else if got != amt {
			bad("grant %s: ledger says %d credits, acknowledged %d", id, got, amt)
		}
	}
	for id, amt := range adminGrants {
		if _, ok := am.grants[id]; !ok {
			bad("ledger has admin grant %s (%d credits) that no acknowledged or replayed request made", id, amt)
		}
	}
	known := map[string]bool{}
	for _, id := range am.holds {
		known[id] = true
		hm := m.holds[id]
		if got, ok := holdEntries[id]; !ok {
			bad("acknowledged hold %s has no hold entry", id)
		} else if got != hm.amount {
			bad("hold %s: hold entry of %d credits, acknowledged %d", id, got, hm.amount)
		}
		switch hm.status {
		case "pending":
			wantHeld += hm.amount
			if _, ok := captures[id]; ok || releases[id] > 0 {
				bad("pending hold %s was resolved in the ledger", id)
			}
		case "captured":
			wantCharged += hm.capturedAmt
			if got, ok := captures[id]; !ok || got != hm.capturedAmt {
				bad("captured hold %s: capture entry %d (present %v), acknowledged %d", id, got, ok, hm.capturedAmt)
			}
		case "released":
			if releases[id] != 1 {
				bad("released hold %s has %d release entries", id, releases[id])
			}
		}
	}
	for id := range holdEntries {
		if !known[id] {
			bad("ledger has hold %s that no acknowledged or replayed request made", id)
		}
	}
	if granted != wantGranted {
		bad("ledger granted %d credits, acknowledged operations imply %d", granted, wantGranted)
	}
	if charged != wantCharged {
		bad("ledger charged %d credits, acknowledged captures imply %d", charged, wantCharged)
	}
	if bal.Held != wantHeld {
		bad("balance held %d, acknowledged pending holds hold %d", bal.Held, wantHeld)
	}
	if got := bal.Available + bal.Held + charged + expir; got != wantGranted {
		bad("available %d + held %d + charged %d + expired %d = %d, but %d credits were granted",
			bal.Available, bal.Held, charged, expir, got, wantGranted)
	}
}

// listAllEntries reads all of an account's entries, newest first.
func listAllEntries(c *apiClient, id string) ([]wireEntry, error) {
	var entries []wireEntry
	cursor := ""
	for {
		var page struct {
			Data       []wireEntry `json:"data"`
			HasMore    bool        `json:"has_more"`
			NextCursor string      `json:"next_cursor"`
		}
		path := "/v1/accounts/" + id + "/entries?limit=500"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		if err := c.getJSON(path, &page); err != nil {
			return nil, err
		}
		entries = append(entries, page.Data...)
		if !page.HasMore {
			return entries, nil
		}
		cursor = page.NextCursor
	}
}
