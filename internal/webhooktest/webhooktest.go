// Package webhooktest receives creditd's webhook deliveries in tests and
// verifies them with the Standard Webhooks reference library (the npm
// package standardwebhooks, run by the machine's Node; see node/) as well
// as with package webhook's own verifier.
package webhooktest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Message is one request a Receiver got.
type Message struct {
	ID        string // webhook-id
	Timestamp string // webhook-timestamp
	Signature string // webhook-signature
	Body      []byte
	Header    http.Header
}

// Payload decodes the body: {"type", "timestamp", "data"}.
func (m Message) Payload() (typ string, data map[string]any) {
	var p struct {
		Type string         `json:"type"`
		Data map[string]any `json:"data"`
	}
	_ = json.Unmarshal(m.Body, &p)
	return p.Type, p.Data
}

// Receiver is an HTTP server that records every request. Respond, when
// set, chooses the status of the n-th request (from 1); nil: 200.
type Receiver struct {
	*httptest.Server
	Respond func(n int, m Message) int

	mu   sync.Mutex
	msgs []Message
	got  chan struct{}
}

// NewReceiver starts a Receiver, closed at the test's end.
func NewReceiver(t testing.TB) *Receiver {
	r := &Receiver{got: make(chan struct{}, 1024)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	m := Message{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
		Signature: req.Header.Get("webhook-signature"), Body: body, Header: req.Header.Clone()}
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	n := len(r.msgs)
	respond := r.Respond
	r.mu.Unlock()
	status := http.StatusOK
	if respond != nil {
		status = respond(n, m)
	}
	w.WriteHeader(status)
	select {
	case r.got <- struct{}{}:
	default:
	}
}

// Messages returns the requests received so far, in order.
func (r *Receiver) Messages() []Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Message(nil), r.msgs...)
}

// Got is signalled after each request.
func (r *Receiver) Got() <-chan struct{} { return r.got }

// nodeDir is the directory of the verifier script and its package.
func nodeDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "node")
}

var installOnce sync.Once
var installErr error

// install runs npm ci (the pinned package-lock.json) when node_modules is
// missing. Test binaries of several packages run at once: an exclusive
// lock on node/.install.lock makes one of them install while the others
// wait, and then find it installed (npm ci would first delete what another
// process is using).
func install() error {
	installOnce.Do(func() {
		dir := nodeDir()
		lock, err := os.OpenFile(filepath.Join(dir, ".install.lock"), os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			installErr = err
			return
		}
		defer lock.Close()
		if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
			installErr = fmt.Errorf("lock %s: %w", lock.Name(), err)
			return
		}
		defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		if _, err := os.Stat(filepath.Join(dir, "node_modules", "standardwebhooks", "package.json")); err == nil {
			return
		}
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			installErr = fmt.Errorf("npm ci in %s: %v: %s", dir, err, out)
		}
	})
	return installErr
}

// NodeResult is the reference verifier's answer for one message.
type NodeResult struct {
	OK      bool           `json:"ok"`
	Error   string         `json:"error"`
	Payload map[string]any `json:"payload"`
}

// VerifyNode verifies messages signed with secret with the reference
// library, taking now as the current time, and returns its answers.
func VerifyNode(t testing.TB, secret string, msgs []Message, now time.Time) []NodeResult {
	t.Helper()
	if err := install(); err != nil {
		t.Fatal(err)
	}
	type in struct {
		Secret  string            `json:"secret"`
		Headers map[string]string `json:"headers"`
		Body    string            `json:"body"`
		Now     int64             `json:"now"`
	}
	ins := make([]in, len(msgs))
	for i, m := range msgs {
		ins[i] = in{Secret: secret, Body: string(m.Body), Now: now.Unix(), Headers: map[string]string{
			"webhook-id": m.ID, "webhook-timestamp": m.Timestamp, "webhook-signature": m.Signature}}
	}
	raw, err := json.Marshal(ins)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("node", filepath.Join(nodeDir(), "verify.js"))
	cmd.Stdin = bytes.NewReader(raw)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node verify.js: %v: %s", err, stderr.Bytes())
	}
	var res []NodeResult
	if err := json.Unmarshal(out, &res); err != nil || len(res) != len(msgs) {
		t.Fatalf("node verify.js answered %s (%v)", out, err)
	}
	return res
}
