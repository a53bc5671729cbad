// Package e2e runs creditd and workers as real processes and drives them
// over HTTP: the jobs lifecycle, crashes and image flows end to end.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creditd/creditd/internal/contract"
	"github.com/creditd/creditd/internal/pgtest"
)

const (
	adminKey  = "sk_e2e_admin_0123456789abcdefghijklmn"
	workerKey = "sk_e2e_worker_0123456789abcdefghijklm"
)

var bin struct {
	once    sync.Once
	dir     string
	creditd string
	example string
	err     error
}

// binaries builds creditd and the example worker once per test binary.
func binaries(t *testing.T) (creditd, example string) {
	t.Helper()
	bin.once.Do(func() {
		bin.dir, bin.err = os.MkdirTemp("", "creditd-e2e-bin-")
		if bin.err != nil {
			return
		}
		bin.creditd = filepath.Join(bin.dir, "creditd")
		bin.example = filepath.Join(bin.dir, "example-worker")
		for _, b := range [][2]string{{bin.creditd, "../cmd/creditd"}, {bin.example, "../examples/worker"}} {
			out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput()
			if err != nil {
				bin.err = fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
				return
			}
		}
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	return bin.creditd, bin.example
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	_ = pgtest.Stop() // a throwaway PostgreSQL cluster, if one was started
	os.Exit(code)
}

// server is a running creditd process.
type server struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	data string
	logs *bytes.Buffer
	args []string // serve's arguments after --data, for restart
	env  []string
}

// startServer starts creditd on SQLite with the test clock.
func startServer(t *testing.T, args ...string) *server {
	t.Helper()
	s := launch(t, append([]string{"--test-clock"}, args...))
	now, err := time.Parse(time.RFC3339Nano, s.admin(200, "GET", "/v1/test-clock", nil).str("now"))
	if err != nil {
		t.Fatal(err)
	}
	s.admin(200, "POST", "/v1/test-clock", map[string]any{"now": clockStart(now)})
	return s
}

// clockStart is where a test server's frozen clock starts: the first minute
// :10 or :40 at or after now. The clock starts at the wall time, so a run near
// a day boundary crossed it when a test advanced the clock, refreshing the
// daily free credits mid-test (a flake of TestJobs at 23:59 UTC). Midnight is
// on a half hour in the zones the tests use, and tests advance the clock by
// far less than the 20 minutes this leaves before the next one.
func clockStart(now time.Time) time.Time {
	start := now.Truncate(30 * time.Minute).Add(10 * time.Minute)
	if start.Before(now) {
		start = start.Add(30 * time.Minute)
	}
	return start
}

// launch starts `creditd serve` on a free port and a fresh data directory
// with the test keys, and waits until it listens.
func launch(t *testing.T, args []string, env ...string) *server {
	t.Helper()
	return launchIn(t, t.TempDir(), args, env...)
}

// launchIn is launch on the data directory data.
func launchIn(t *testing.T, data string, args []string, env ...string) *server {
	t.Helper()
	creditd, _ := binaries(t)
	s := &server{t: t, data: data, logs: new(bytes.Buffer), args: args, env: env}
	all := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data}, args...)
	s.cmd = exec.Command(creditd, all...)
	s.cmd.Env = append(append(os.Environ(), "CREDITD_ADMIN_KEY="+adminKey, "CREDITD_WORKER_KEY="+workerKey), env...)
	s.cmd.Stderr = s.logs
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = s.cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(10 * time.Second):
				_ = s.cmd.Process.Kill()
			}
		}
		if t.Failed() {
			t.Logf("server logs:\n%s", s.logs.String())
		}
	})
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "creditd listening on "); ok {
				urlc <- u
			}
		}
	}()
	select {
	case s.url = <-urlc:
	case <-time.After(60 * time.Second):
		t.Fatalf("server did not start: %s", s.logs.String())
	}
	return s
}

// restart stops the server (kill -9 when kill, else SIGTERM and a clean
// shutdown) and starts it again on the same data directory, with the test
// clock where it was.
func (s *server) restart(kill bool) {
	s.t.Helper()
	var now string
	if slices.Contains(s.args, "--test-clock") {
		now = s.admin(200, "GET", "/v1/test-clock", nil).str("now")
	}
	if kill {
		_ = s.cmd.Process.Kill()
	} else {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
	}
	_ = s.cmd.Wait()
	n := launchIn(s.t, s.data, s.args, s.env...)
	s.cmd, s.url, s.logs = n.cmd, n.url, n.logs
	if now != "" {
		s.admin(200, "POST", "/v1/test-clock", map[string]any{"now": now})
	}
}

// verify runs `creditd verify` on the server's data directory.
func (s *server) verify() {
	s.t.Helper()
	creditd, _ := binaries(s.t)
	out, err := exec.Command(creditd, "verify", "--data", s.data).CombinedOutput()
	if err != nil {
		s.t.Fatalf("verify: %v\n%s", err, out)
	}
}

// proc is a worker process.
type proc struct {
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

func (s *server) startProc(t *testing.T, path string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(path, args...), logs: new(bytes.Buffer), done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), "CREDITD_WORKER_KEY="+workerKey)
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("%s logs:\n%s", filepath.Base(path), p.logs.String())
		}
	})
	return p
}

// exampleWorker starts examples/worker against the server, through a
// proxy that checks each of its exchanges against the API's document.
func (s *server) exampleWorker(t *testing.T, args ...string) *proc {
	_, example := binaries(t)
	return s.startProc(t, example, append([]string{"--server", checkedProxy(t, s.url), "--key", workerKey}, args...)...)
}

// builtinWorker starts `creditd worker` as a separate process, through a
// proxy that checks each of its exchanges against the API's document.
func (s *server) builtinWorker(t *testing.T, args ...string) *proc {
	creditd, _ := binaries(t)
	return s.startProc(t, creditd, append([]string{"worker", "--server", checkedProxy(t, s.url), "--key", workerKey}, args...)...)
}

func (p *proc) wait(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("worker did not exit within %s:\n%s", d, p.logs.String())
	}
}

func (p *proc) kill9() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

type resp struct {
	status int
	body   map[string]any
	raw    []byte
}

func (r resp) str(k string) string { s, _ := r.body[k].(string); return s }
func (r resp) num(k string) int64  { f, _ := r.body[k].(float64); return int64(f) }
func (r resp) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (s *server) req(key, method, path string, body any, ctype string) resp {
	s.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	r, err := http.NewRequest(method, s.url+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	r.Header.Set("Authorization", "Bearer "+key)
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	// Every exchange is checked against api/openapi.yaml.
	client := &http.Client{Transport: contract.Transport(s.t, nil)}
	res, err := client.Do(r)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	out := resp{status: res.StatusCode, raw: raw}
	if strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(raw, &out.body)
	}
	return out
}

func (s *server) admin(status int, method, path string, body any) resp {
	s.t.Helper()
	r := s.req(adminKey, method, path, body, "application/json")
	if status != 0 && r.status != status {
		s.t.Fatalf("%s %s: %d, want %d: %s", method, path, r.status, status, r.raw)
	}
	return r
}

func (s *server) worker(status int, method, path string, body any) resp {
	s.t.Helper()
	r := s.req(workerKey, method, path, body, "application/json")
	if status != 0 && r.status != status {
		s.t.Fatalf("worker %s %s: %d, want %d: %s", method, path, r.status, status, r.raw)
	}
	return r
}

func (s *server) balance(acct string) (available, held int64) {
	s.t.Helper()
	b := s.admin(200, "GET", "/v1/accounts/"+acct+"/balance", nil)
	return b.num("available"), b.num("held")
}

func (s *server) wantBalance(acct string, available, held int64) {
	s.t.Helper()
	a, h := s.balance(acct)
	if a != available || h != held {
		s.t.Fatalf("%s: available %d held %d, want %d and %d", acct, a, h, available, held)
	}
}

func (s *server) advance(d time.Duration) {
	s.t.Helper()
	s.admin(200, "POST", "/v1/test-clock", map[string]any{"advance_seconds": int64(d / time.Second)})
}

func (s *server) job(id string) resp {
	s.t.Helper()
	return s.admin(200, "GET", "/v1/jobs/"+id, nil)
}

// waitJob polls a job until cond holds (processes run on real time).
func (s *server) waitJob(id string, what string, cond func(resp) bool) resp {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		j := s.job(id)
		if cond(j) {
			return j
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("job %s never became %s: %s", id, what, j.raw)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *server) waitStatus(id, status string) resp {
	s.t.Helper()
	return s.waitJob(id, status, func(j resp) bool { return j.str("status") == status })
}

// entryTypes lists an account's ledger entries (newest first) as "type:amount".
func (s *server) entryTypes(acct string) []string {
	s.t.Helper()
	r := s.admin(200, "GET", "/v1/accounts/"+acct+"/entries?limit=500", nil)
	var out []string
	for _, d := range r.body["data"].([]any) {
		m := d.(map[string]any)
		out = append(out, fmt.Sprintf("%s:%v", m["type"], m["amount"]))
	}
	return out
}

func (s *server) createJob(acct, action string, qty int, params map[string]any) resp {
	s.t.Helper()
	return s.admin(201, "POST", "/v1/jobs", map[string]any{"account_id": acct, "action": action, "quantity": qty, "params": params})
}

var _ = context.Background

func TestClockStartAvoidsDayBoundaries(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, now := range []time.Time{
		time.Date(2026, 11, 25, 23, 59, 20, 0, time.UTC),
		time.Date(2026, 11, 25, 22, 58, 0, 0, time.UTC), // Berlin's midnight in winter
		time.Date(2026, 7, 1, 21, 59, 59, 0, time.UTC),  // and in summer
		time.Date(2026, 11, 25, 12, 10, 0, 0, time.UTC),
		time.Date(2026, 11, 25, 12, 10, 0, 1000, time.UTC),
	} {
		start := clockStart(now)
		if start.Before(now) || start.Sub(now) > 30*time.Minute {
			t.Fatalf("clockStart(%s) = %s", now, start)
		}
		// A test may advance the clock by up to 10 minutes without a new day.
		for _, loc := range []*time.Location{time.UTC, berlin} {
			a, b := start.In(loc), start.Add(10*time.Minute).In(loc)
			if a.YearDay() != b.YearDay() {
				t.Fatalf("clockStart(%s) = %s: a new day in %s within 10 minutes", now, start, loc)
			}
		}
	}
}
