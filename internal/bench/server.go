package bench

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creditd/creditd/internal/promtext"
)

// serverProc is a `creditd serve` child process.
type serverProc struct {
	cmd     *exec.Cmd
	url     string
	key     string
	stderr  *tailBuffer
	exited  chan struct{}
	waitErr error
}

// startServer runs argv0 serve on a free loopback port with the data
// directory dataDir (and PostgreSQL dbURL when set), no built-in worker,
// and fresh keys, and waits for "creditd listening on URL".
func startServer(ctx context.Context, argv []string, dataDir, dbURL string) (*serverProc, error) {
	key := "sk_admin_bench_" + rand.Text()
	args := append(append([]string{}, argv[1:]...), "serve", "--addr", "127.0.0.1:0", "--data", dataDir,
		"--builtin-worker", "0", "--log-level", "warn")
	if dbURL != "" {
		args = append(args, "--db", dbURL)
	}
	cmd := exec.Command(argv[0], args...)
	// Only our settings: an inherited CREDITD_DATABASE_URL or CREDITD_CONFIG
	// would change what is measured. CREDITD_DEBUG_ADDR passes, so the
	// server can be profiled while it is measured.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CREDITD_") || strings.HasPrefix(kv, "CREDITD_DEBUG_ADDR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env,
		"CREDITD_ADMIN_KEY="+key,
		"CREDITD_WORKER_KEY=sk_worker_bench_"+rand.Text(),
		"CREDITD_SESSION_SECRET=ss_bench_"+rand.Text(),
	)
	setParentDeath(cmd)
	p := &serverProc{cmd: cmd, key: key, stderr: &tailBuffer{max: 16 << 10}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", argv[0], err)
	}
	urlc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		found := false
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "creditd listening on "); ok && !found {
				found = true
				urlc <- strings.TrimSpace(u)
			}
		}
		_, _ = io.Copy(io.Discard, out)
	}()
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	select {
	case p.url = <-urlc:
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("creditd serve exited before listening (%v): %s", p.waitErr, p.stderr.String())
	case <-time.After(90 * time.Second):
		p.stop()
		return nil, fmt.Errorf("creditd serve did not start listening within 90s: %s", p.stderr.String())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop sends SIGTERM (graceful shutdown: queued operations commit) and
// waits, killing the process after 30 s.
func (p *serverProc) stop() error {
	select {
	case <-p.exited:
		return p.waitErr
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("creditd serve did not stop within 30s; killed")
	}
	if p.waitErr != nil {
		return fmt.Errorf("creditd serve: %v: %s", p.waitErr, p.stderr.String())
	}
	return nil
}

func (p *serverProc) pid() int { return p.cmd.Process.Pid }

// scrapeCounters reads creditd_engine_batch_ops and, on SQLite,
// creditd_sqlite_journal_full_waits_total from /metrics.
func scrapeCounters(hc *http.Client, base string) (counters, error) {
	resp, err := hc.Get(base + "/metrics")
	if err != nil {
		return counters{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return counters{}, fmt.Errorf("GET /metrics: status %d", resp.StatusCode)
	}
	mfs, err := promtext.Parse(resp.Body)
	if err != nil {
		return counters{}, err
	}
	c := batchOps(mfs)
	c.fullWaits, c.waitsOK = mfs.Value(fullWaitsMetric)
	return c, nil
}

// setupHTTPAccounts creates the accounts (paid plan) and grants each
// grantCredits admin credits through the API, workers requests at a time.
func setupHTTPAccounts(hc *http.Client, base, key string, ids []string, workers int) error {
	do := func(method, url, body string, want ...int) error {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range want {
			if resp.StatusCode == w {
				return nil
			}
		}
		return fmt.Errorf("%s %s: status %d: %s", method, url, resp.StatusCode, snippet(b))
	}
	grant := fmt.Sprintf(`{"amount":%d,"source":"admin"}`, grantCredits)
	return parallel(len(ids), workers, func(i int) error {
		if err := do(http.MethodPut, base+"/v1/accounts/"+ids[i], `{"plan":"paid"}`, http.StatusCreated, http.StatusOK); err != nil {
			return err
		}
		return do(http.MethodPost, base+"/v1/accounts/"+ids[i]+"/grants", grant, http.StatusCreated)
	})
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}
