// Package stripemock starts stripe-mock (github.com/stripe/stripe-mock) for
// tests: a local, stateless imitation of Stripe's API that answers every
// endpoint with fixture objects. scripts/test installs it into GOBIN.
//
// When the binary cannot be found or started, Start skips the test, or
// fails it when CREDITD_CI=1.
package stripemock

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// Version is the stripe-mock release scripts/test installs.
const Version = "v0.203.0"

// startTimeout bounds how long stripe-mock may take to listen.
const startTimeout = 30 * time.Second

var listening = regexp.MustCompile(`Listening for HTTP at address: (127\.0\.0\.1:\d+)`)

// Find returns the path of the stripe-mock binary: $STRIPE_MOCK, then
// PATH, then GOBIN, then GOPATH/bin.
func Find() (string, bool) {
	if p := os.Getenv("STRIPE_MOCK"); p != "" {
		return p, true
	}
	if p, err := exec.LookPath("stripe-mock"); err == nil {
		return p, true
	}
	var dirs []string
	if gobin := goEnv("GOBIN"); gobin != "" {
		dirs = append(dirs, gobin)
	}
	if gopath := goEnv("GOPATH"); gopath != "" {
		for _, d := range filepath.SplitList(gopath) {
			dirs = append(dirs, filepath.Join(d, "bin"))
		}
	}
	if home, err := os.UserHomeDir(); err == nil {
		dirs = append(dirs, filepath.Join(home, "go", "bin"))
	}
	for _, d := range dirs {
		p := filepath.Join(d, "stripe-mock")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, true
		}
	}
	return "", false
}

func goEnv(name string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CREDITD_CI") == "1" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format+" (install: go install github.com/stripe/stripe-mock@"+Version+")", args...)
}

// Start runs stripe-mock on free loopback ports (HTTP and HTTPS, so it
// takes no fixed port) until the test ends, and returns its HTTP base URL.
func Start(t testing.TB) string {
	t.Helper()
	bin, ok := Find()
	if !ok {
		unavailable(t, "stripe-mock not found")
		return ""
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-http-addr", "127.0.0.1:", "-https-addr", "127.0.0.1:")
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		cancel()
		unavailable(t, "start stripe-mock %s: %v", bin, err)
		return ""
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	deadline := time.After(startTimeout)
	for {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			return "http://" + m[1]
		}
		select {
		case <-exited:
			unavailable(t, "stripe-mock exited: %s", logs.String())
			return ""
		case <-deadline:
			t.Fatalf("stripe-mock did not listen within %s: %s", startTimeout, logs.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

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
