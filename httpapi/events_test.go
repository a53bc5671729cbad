package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/creditd/creditd/app"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// sseEvent is one parsed Server-Sent Event ("comment" for ": ..." lines).
type sseEvent struct {
	id, name, data string
}

func (ev sseEvent) available() int64 {
	var b struct {
		Available int64 `json:"available"`
	}
	if err := json.Unmarshal([]byte(ev.data), &b); err != nil {
		panic(fmt.Sprintf("not a balance: %q", ev.data))
	}
	return b.Available
}

// stream is an open event stream read by a goroutine.
type stream struct {
	t      *testing.T
	res    *http.Response
	events chan sseEvent
	cancel context.CancelFunc
	done   chan struct{}
}

// openStream opens an account's event stream as the admin (or with the
// given headers) and fails the test unless it answers 200.
func (e *env) openStream(id string, headers ...hdr) *stream {
	e.t.Helper()
	s, status, body := e.tryStream(id, headers...)
	if status != http.StatusOK {
		e.t.Fatalf("events %s: %d %s", id, status, body)
	}
	return s
}

func (e *env) tryStream(id string, headers ...hdr) (*stream, int, string) {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/accounts/"+id+"/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	for _, h := range headers {
		for k, v := range h {
			req.Header.Set(k, v)
		}
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		e.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		return nil, res.StatusCode, string(b)
	}
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		e.t.Fatalf("Content-Type %q", ct)
	}
	s := &stream{t: e.t, res: res, events: make(chan sseEvent, 4096), cancel: cancel, done: make(chan struct{})}
	go s.read()
	e.t.Cleanup(s.close)
	return s, res.StatusCode, ""
}

func (s *stream) read() {
	defer close(s.done)
	defer close(s.events)
	sc := bufio.NewScanner(s.res.Body)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if ev.name != "" || ev.data != "" {
				s.events <- ev
			}
			ev = sseEvent{}
		case strings.HasPrefix(line, ":"):
			s.events <- sseEvent{name: "comment", data: strings.TrimSpace(line[1:])}
		case strings.HasPrefix(line, "id: "):
			ev.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			ev.name = line[7:]
		case strings.HasPrefix(line, "data: "):
			ev.data = line[6:]
		}
	}
}

func (s *stream) close() {
	s.cancel()
	s.res.Body.Close()
	<-s.done
}

// next returns the next event that is not a comment.
func (s *stream) next(timeout time.Duration) sseEvent {
	s.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case ev, ok := <-s.events:
			if !ok {
				s.t.Fatal("the stream ended")
			}
			if ev.name != "comment" {
				return ev
			}
		case <-deadline:
			s.t.Fatalf("no event within %s", timeout)
		}
	}
}

// nextBalance skips job events up to the next balance.
func (s *stream) nextBalance(timeout time.Duration) sseEvent {
	s.t.Helper()
	for {
		if ev := s.next(timeout); ev.name == "balance" {
			return ev
		}
	}
}

func (e *env) grant(id string, amount int64) {
	e.t.Helper()
	e.must(201, "POST", "/v1/accounts/"+id+"/grants", map[string]any{"amount": amount, "source": "admin"})
}

// metric reads a counter or gauge from /metrics.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	res, err := http.Get(e.url + "/metrics")
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

func (e *env) waitMetric(name string, want float64) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.metric(name) != want {
		if time.Now().After(deadline) {
			e.t.Fatalf("%s = %v, want %v", name, e.metric(name), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestEvents(t *testing.T) {
	t.Run("BalanceAndJobEvents", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		s := e.openStream("a")
		if ev := s.next(5 * time.Second); ev.name != "balance" || ev.available() != 45 || ev.id == "" {
			t.Fatalf("first event: %+v", ev)
		}
		j := e.must(201, "POST", "/v1/jobs", map[string]any{"account_id": "a", "action": "generate", "params": map[string]any{"prompt": "x"}})
		ev := s.next(5 * time.Second)
		var job struct{ ID, Status string }
		_ = json.Unmarshal([]byte(ev.data), &job)
		if ev.name != "job" || job.ID != j.str("id") || job.Status != "queued" {
			t.Fatalf("job event: %+v", ev)
		}
		if b := s.next(5 * time.Second); b.name != "balance" || b.available() != 40 || !strings.Contains(b.data, `"held":5`) {
			t.Fatalf("balance event: %+v", b)
		}
	})

	t.Run("ResumeAfterDisconnectReplaysMissedEvents", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		s := e.openStream("a")
		s.next(5 * time.Second)
		e.grant("a", 10)
		seen := s.nextBalance(5 * time.Second)
		if seen.available() != 55 {
			t.Fatalf("%+v", seen)
		}
		s.close()
		// Missed while disconnected:
		e.grant("a", 20)
		e.grant("a", 30)
		again := e.openStream("a", hdr{"Last-Event-ID": seen.id})
		first, second := again.next(5*time.Second), again.next(5*time.Second)
		if first.available() != 75 || second.available() != 105 {
			t.Fatalf("replay: %d then %d, want 75 then 105", first.available(), second.available())
		}
		if first.id == seen.id || first.id == second.id {
			t.Fatalf("ids: %s %s %s", seen.id, first.id, second.id)
		}
		// Live events follow the replay.
		e.grant("a", 1)
		if ev := again.nextBalance(5 * time.Second); ev.available() != 106 {
			t.Fatalf("live after replay: %+v", ev)
		}
	})

	t.Run("UnknownLastEventIDResyncsWithABalance", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		e.grant("a", 5)
		for _, id := range []string{"from-another-node-7", "garbage", "x-99999999"} {
			s := e.openStream("a", hdr{"Last-Event-ID": id})
			if ev := s.next(5 * time.Second); ev.name != "balance" || ev.available() != 50 {
				t.Fatalf("Last-Event-ID %q: %+v", id, ev)
			}
			s.close()
		}
	})

	t.Run("SlowClientIsDroppedWithoutHoldingUpOthers", func(t *testing.T) {
		// Small socket buffers make a client that never reads fall behind
		// after a few events instead of a few megabytes.
		e := newEnv(t, withHTTPServer(func(s *httptest.Server) {
			s.Listener = smallBuffers{s.Listener}
		}))
		e.createAccount("a", nil)
		fast := e.openStream("a")
		fast.next(5 * time.Second)
		slow, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer slow.Close()
		_ = slow.(*net.TCPConn).SetReadBuffer(4096)
		fmt.Fprintf(slow, "GET /v1/accounts/a/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n", adminKey)
		e.waitMetric("creditd_event_streams", 2)

		want := int64(45)
		for i := 1; e.metric("creditd_event_streams_dropped_total") == 0; i++ {
			if i > 2000 {
				t.Fatal("the slow client was never dropped")
			}
			e.grant("a", 1)
			want++
			start := time.Now()
			if ev := fast.nextBalance(2 * time.Second); ev.available() != want {
				t.Fatalf("fast client got %d, want %d", ev.available(), want)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("fast client waited %s for event %d", d, i)
			}
		}
		// The slow client's stream is closed at once; the fast one goes on.
		_ = slow.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.Copy(io.Discard, slow); err != nil {
			t.Fatalf("the dropped stream was not closed: %v", err)
		}
		e.waitMetric("creditd_event_streams", 1)
		e.grant("a", 1)
		if ev := fast.nextBalance(2 * time.Second); ev.available() != want+1 {
			t.Fatalf("fast client after the drop: %+v", ev)
		}
	})

	t.Run("ConnectionCapPerAccount", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		e.createAccount("b", nil)
		var open []*stream
		for range app.EventStreamsPerAccountMax {
			s := e.openStream("a")
			s.next(5 * time.Second)
			open = append(open, s)
		}
		_, status, body := e.tryStream("a")
		if status != http.StatusTooManyRequests || !strings.Contains(body, `"too_many_requests"`) {
			t.Fatalf("stream over the cap: %d %s", status, body)
		}
		// Other accounts are not affected.
		e.openStream("b").next(5 * time.Second)
		open[0].close()
		deadline := time.Now().Add(5 * time.Second)
		for {
			s, status, _ := e.tryStream("a")
			if status == http.StatusOK {
				s.next(5 * time.Second)
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("a closed stream never freed its slot")
			}
			time.Sleep(20 * time.Millisecond)
		}
	})

	t.Run("HeartbeatsAndNoServerTimeouts", func(t *testing.T) {
		e := newEnv(t, withApp(func(o *app.Options) { o.EventHeartbeat = 100 * time.Millisecond }),
			withHTTPServer(func(s *httptest.Server) {
				s.Config.ReadTimeout, s.Config.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond
			}))
		e.createAccount("a", nil)
		s := e.openStream("a")
		s.next(5 * time.Second)
		pings := 0
		deadline := time.After(1200 * time.Millisecond)
	wait:
		for {
			select {
			case ev, ok := <-s.events:
				if !ok {
					t.Fatal("the stream ended at the server's timeouts")
				}
				if ev.name == "comment" {
					pings++
				}
			case <-deadline:
				break wait
			}
		}
		if pings < 5 {
			t.Fatalf("%d heartbeats in 1.2 s at 100 ms", pings)
		}
		e.grant("a", 1)
		if ev := s.nextBalance(2 * time.Second); ev.available() != 46 {
			t.Fatalf("%+v", ev)
		}
	})

	t.Run("ShutdownEndsStreams", func(t *testing.T) {
		e := newEnv(t)
		e.createAccount("a", nil)
		s := e.openStream("a")
		s.next(5 * time.Second)
		e.app.CloseEvents()
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			t.Fatal("the stream outlived CloseEvents")
		}
		if _, status, _ := e.tryStream("a"); status != http.StatusServiceUnavailable {
			t.Fatalf("new stream after close: %d", status)
		}
	})

	t.Run("ChangesFromOtherNodesAreReadFresh", func(t *testing.T) {
		bus := engine.NewLocalBus()
		e := newEnv(t, withBus(bus))
		e.createAccount("a", nil)
		s := e.openStream("a")
		s.next(5 * time.Second)
		j := e.must(201, "POST", "/v1/jobs", map[string]any{"account_id": "a", "action": "generate", "params": map[string]any{"prompt": "x"}})
		s.next(5 * time.Second) // job
		s.next(5 * time.Second) // balance
		// Another node reports the job changed: its event carries only ids,
		// and the stream reads the job through this node's engine.
		bus.Publish([]engine.Event{{AccountID: "a", Remote: true, Jobs: []ledger.Job{{ID: j.str("id")}}}})
		ev := s.next(5 * time.Second)
		if ev.name != "job" || !strings.Contains(ev.data, `"status":"queued"`) || !strings.Contains(ev.data, `"cost":5`) {
			t.Fatalf("remote job event: %+v", ev)
		}
	})

	// The engine leaves balances to its subscribers: the hub computes one
	// only for an account it keeps events for, so the events of all other
	// accounts cost it nothing.
	t.Run("UnwatchedAccountsCostNoBalance", func(t *testing.T) {
		bus := engine.NewLocalBus()
		e := newEnv(t, withBus(bus))
		e.createAccount("a", nil)
		e.createAccount("b", nil)
		s := e.openStream("a")
		s.next(5 * time.Second)
		var events []engine.Event
		cancel := bus.Subscribe(func(ev engine.Event) {
			if ev.AccountID == "b" && ev.State != nil {
				events = append(events, ev)
			}
		})
		e.grant("b", 10)
		cancel()
		if len(events) == 0 {
			t.Fatal("no event with the state of b")
		}
		if allocs := testing.AllocsPerRun(100, func() { bus.Publish(events) }); allocs != 0 {
			t.Errorf("an event of an unwatched account cost %.0f allocations", allocs)
		}
		// The watched account's balance is computed from its event's state.
		e.grant("a", 10)
		if ev := s.nextBalance(5 * time.Second); ev.available() != 55 {
			t.Fatalf("balance event: %+v", ev)
		}
	})

	t.Run("ErrNotFound", func(t *testing.T) {
		e := newEnv(t)
		if _, status, _ := e.tryStream("nobody"); status != http.StatusNotFound {
			t.Fatalf("%d", status)
		}
	})
}

// smallBuffers shrinks the send buffer of accepted connections.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}
