package httpapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// Limits of the live event streams (GET /v1/accounts/{id}/events).
const (
	// EventBufferSize bounds the events queued for one stream. A client
	// that falls this far behind is dropped (its stream ends and it
	// reconnects with Last-Event-ID), so a slow reader never holds up the
	// engine or the other clients.
	EventBufferSize = 64
	// EventStreamsPerAccountMax caps the concurrent streams of one account;
	// beyond it a new stream gets 429.
	EventStreamsPerAccountMax = 8
	// EventHistoryPerAccount is how many recent events of an account are
	// kept for Last-Event-ID replay.
	EventHistoryPerAccount = 256
	// EventAccountsMax bounds the accounts whose recent events are kept
	// (the least recently watched are forgotten first).
	EventAccountsMax = 10000
	// EventHeartbeatDefault is the interval of keep-alive comments.
	EventHeartbeatDefault = 15 * time.Second
	// eventWriteTimeout bounds one write to a stream (the server's
	// WriteTimeout does not apply to streams).
	eventWriteTimeout = 15 * time.Second
	// eventRetryMs is the reconnection delay we suggest to EventSource.
	eventRetryMs = 3000
	// eventRemoteJobsMax bounds the job ids remembered per account while
	// an event from another node waits to be read.
	eventRemoteJobsMax = 64
	// eventRemoteReadTimeout bounds the fresh reads for such an event.
	eventRemoteReadTimeout = 5 * time.Second
	// eventRevocationCheckTimeout bounds a stream's heartbeat check that
	// its credential was not revoked through another node.
	eventRevocationCheckTimeout = 5 * time.Second
)

// sseEvent is one event of an account's stream.
type sseEvent struct {
	seq  uint64
	name string // "balance" or "job"
	data []byte
}

// streamClient is one open stream.
type streamClient struct {
	ch   chan sseEvent
	gone chan struct{} // closed when the hub drops or closes the stream
	// cred is the user credential the stream was opened with (nil for the
	// admin key): the stream ends when it expires or is revoked.
	cred *Claims

	mu      sync.Mutex
	serving bool   // the handler still owns the connection
	abort   func() // makes a pending write fail at once
}

// arm prepares a write: it fails once the stream was dropped, and
// otherwise extends the write deadline. kill takes the same lock after
// closing gone, so a write armed before a drop is aborted and none is
// armed after it.
func (c *streamClient) arm(rc *http.ResponseController) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.gone:
		return errStreamDropped
	default:
	}
	_ = rc.SetWriteDeadline(time.Now().Add(eventWriteTimeout))
	return nil
}

func (c *streamClient) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.serving && c.abort != nil {
		c.abort()
	}
}

func (c *streamClient) finish() {
	c.mu.Lock()
	c.serving = false
	c.mu.Unlock()
}

var errStreamDropped = errors.New("stream dropped")

// streamAccount is what the hub keeps for one watched account.
type streamAccount struct {
	clients map[*streamClient]struct{}
	// history holds the latest events, oldest first; every event with a
	// seq above floor is in it.
	history []sseEvent
	floor   uint64
	// balance is the last balance event's data without as_of, to skip
	// events that change nothing a user sees.
	balance []byte
	active  uint64 // seq at the last subscribe or unsubscribe
}

// hub fans the engine's committed events out to the open streams. It
// subscribes once to the engine; the engine calls it on the committer's
// goroutine, so it never blocks: each stream has a bounded buffer, and a
// stream whose buffer is full is dropped.
type hub struct {
	eng       *engine.Engine
	log       *slog.Logger
	heartbeat time.Duration
	epoch     string

	mu       sync.Mutex
	seq      uint64
	accounts map[string]*streamAccount
	closed   bool

	remoteMu      sync.Mutex
	remotePending map[string]map[string]bool // account → job ids
	remoteWake    chan struct{}
	remoteOnce    sync.Once
	done          chan struct{}
	unsubscribe   func()

	streams prometheus.Gauge
	dropped prometheus.Counter
	refused prometheus.Counter
}

func newHub(eng *engine.Engine, log *slog.Logger, reg *prometheus.Registry, heartbeat time.Duration) *hub {
	if heartbeat <= 0 {
		heartbeat = EventHeartbeatDefault
	}
	h := &hub{
		eng: eng, log: log, heartbeat: heartbeat, epoch: rand.Text()[:8],
		accounts: map[string]*streamAccount{}, remotePending: map[string]map[string]bool{},
		remoteWake: make(chan struct{}, 1), done: make(chan struct{}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "creditd_event_streams", Help: "Open event streams."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "creditd_event_streams_dropped_total", Help: "Event streams dropped because the client fell behind."}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{Name: "creditd_event_streams_refused_total", Help: "Event streams refused by the per-account cap."}),
	}
	reg.MustRegister(h.streams, h.dropped, h.refused)
	h.unsubscribe = eng.Subscribe(h.onEvent)
	return h
}

// CloseEvents ends every open event stream and refuses new ones (for a
// graceful shutdown: register it with http.Server.RegisterOnShutdown).
func (s *Server) CloseEvents() {
	if s.events != nil {
		s.events.close()
	}
}

func (h *hub) close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	var kills []*streamClient
	for _, a := range h.accounts {
		for c := range a.clients {
			close(c.gone)
			kills = append(kills, c)
			h.streams.Dec()
		}
		a.clients = map[*streamClient]struct{}{}
	}
	h.mu.Unlock()
	h.unsubscribe()
	close(h.done)
	for _, c := range kills {
		go c.kill()
	}
}

func (h *hub) watched(accountID string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.accounts[accountID] != nil
}

// onEvent receives the engine's events. It must not block. Only events of
// watched accounts cost anything: their balance is computed here, from the
// event's committed state, and for no other account.
func (h *hub) onEvent(ev engine.Event) {
	if !h.watched(ev.AccountID) {
		return
	}
	if ev.Remote {
		h.queueRemote(ev)
		return
	}
	h.emit(ev.AccountID, ev.Jobs, ev.BalanceView(h.eng.Config()))
}

// emit appends an account's job and balance events to its history and
// hands them to its streams.
func (h *hub) emit(accountID string, jobs []ledger.Job, bal *ledger.Balance) {
	var out []sseEvent
	for _, j := range jobs {
		out = append(out, sseEvent{name: "job", data: mustJSON(j)})
	}
	var fingerprint []byte
	if bal != nil {
		b := *bal
		b.AsOf = time.Time{}
		fingerprint = mustJSON(b)
		out = append(out, sseEvent{name: "balance", data: mustJSON(bal)})
	}
	var kills []*streamClient
	h.mu.Lock()
	a := h.accounts[accountID]
	if a == nil || h.closed {
		h.mu.Unlock()
		return
	}
	for _, e := range out {
		if e.name == "balance" {
			if bytes.Equal(a.balance, fingerprint) {
				continue
			}
			a.balance = fingerprint
		}
		h.seq++
		e.seq = h.seq
		a.history = append(a.history, e)
		if len(a.history) > EventHistoryPerAccount {
			a.floor = a.history[0].seq
			a.history = append(a.history[:0], a.history[1:]...)
		}
		for c := range a.clients {
			select {
			case c.ch <- e:
			default:
				// Too far behind: drop the stream rather than wait for it.
				delete(a.clients, c)
				close(c.gone)
				h.streams.Dec()
				h.dropped.Inc()
				kills = append(kills, c)
			}
		}
	}
	h.mu.Unlock()
	for _, c := range kills {
		go c.kill()
	}
}

// queueRemote remembers that another node changed an account; a goroutine
// reads the fresh state through the engine (never on the publisher's
// goroutine). Several events of one account coalesce into one read.
func (h *hub) queueRemote(ev engine.Event) {
	h.remoteMu.Lock()
	ids := h.remotePending[ev.AccountID]
	if ids == nil {
		ids = map[string]bool{}
		h.remotePending[ev.AccountID] = ids
	}
	for _, j := range ev.Jobs {
		if len(ids) < eventRemoteJobsMax {
			ids[j.ID] = true
		}
	}
	h.remoteMu.Unlock()
	h.remoteOnce.Do(func() { go h.readRemote() })
	select {
	case h.remoteWake <- struct{}{}:
	default:
	}
}

func (h *hub) readRemote() {
	for {
		select {
		case <-h.remoteWake:
		case <-h.done:
			return
		}
		h.remoteMu.Lock()
		pending := h.remotePending
		h.remotePending = map[string]map[string]bool{}
		h.remoteMu.Unlock()
		for acct, ids := range pending {
			ctx, cancel := context.WithTimeout(context.Background(), eventRemoteReadTimeout)
			var jobs []ledger.Job
			for id := range ids {
				if j, err := h.eng.GetJob(ctx, id); err == nil {
					jobs = append(jobs, j)
				}
			}
			var bal *ledger.Balance
			if b, err := h.eng.Balance(ctx, acct); err == nil {
				bal = &b
			} else {
				h.log.Warn("event stream: could not read a remote change", "account", acct, "err", err)
			}
			cancel()
			h.emit(acct, jobs, bal)
		}
	}
}

// subscription is what a new stream starts with.
type subscription struct {
	c *streamClient
	// replay are the events after Last-Event-ID; when resync is set
	// instead, the stream starts with a fresh balance under id snapshot.
	replay   []sseEvent
	resync   bool
	snapshot uint64
}

func (h *hub) subscribe(accountID, lastEventID string, cred *Claims) (*subscription, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ledger.Errorf(ledger.EUnavailable, "the service is shutting down")
	}
	a := h.accounts[accountID]
	if a == nil {
		if len(h.accounts) >= EventAccountsMax {
			h.evictLocked()
		}
		a = &streamAccount{clients: map[*streamClient]struct{}{}, floor: h.seq}
		h.accounts[accountID] = a
	}
	if len(a.clients) >= EventStreamsPerAccountMax {
		h.refused.Inc()
		return nil, ledger.Errorf(ledger.ETooMany, "at most %d event streams per account; close one first", EventStreamsPerAccountMax)
	}
	c := &streamClient{ch: make(chan sseEvent, EventBufferSize), gone: make(chan struct{}), serving: true, cred: cred}
	a.clients[c] = struct{}{}
	a.active = h.seq
	h.streams.Inc()
	sub := &subscription{c: c}
	if seq, ok := h.parseID(lastEventID); ok && seq >= a.floor && seq <= h.seq {
		for _, e := range a.history {
			if e.seq > seq {
				sub.replay = append(sub.replay, e)
			}
		}
		return sub, nil
	}
	sub.resync, sub.snapshot = true, h.seq
	return sub, nil
}

func (h *hub) unsubscribeClient(accountID string, c *streamClient) {
	h.mu.Lock()
	defer h.mu.Unlock()
	a := h.accounts[accountID]
	if a == nil {
		return
	}
	if _, ok := a.clients[c]; ok {
		delete(a.clients, c)
		h.streams.Dec()
	}
	a.active = h.seq
}

// revoke ends the streams of an account opened with a user credential
// that revoked matches.
func (h *hub) revoke(accountID string, revoked func(*Claims) bool) {
	var kills []*streamClient
	h.mu.Lock()
	if a := h.accounts[accountID]; a != nil {
		for c := range a.clients {
			if c.cred != nil && revoked(c.cred) {
				delete(a.clients, c)
				close(c.gone)
				h.streams.Dec()
				kills = append(kills, c)
			}
		}
	}
	h.mu.Unlock()
	for _, c := range kills {
		go c.kill()
	}
}

// evictLocked forgets the least recently watched account without streams.
func (h *hub) evictLocked() {
	var victim string
	var oldest uint64
	for id, a := range h.accounts {
		if len(a.clients) == 0 && (victim == "" || a.active < oldest) {
			victim, oldest = id, a.active
		}
	}
	if victim != "" {
		delete(h.accounts, victim)
	}
}

// eventID renders an event id: this process's epoch and the event's seq,
// so an id from another process or node is recognised as unknown.
func (h *hub) eventID(seq uint64) string { return h.epoch + "-" + strconv.FormatUint(seq, 10) }

func (h *hub) parseID(id string) (uint64, bool) {
	epoch, n, ok := strings.Cut(id, "-")
	if !ok || epoch != h.epoch {
		return 0, false
	}
	seq, err := strconv.ParseUint(n, 10, 64)
	return seq, err == nil
}

func (s *Server) getEvents(w http.ResponseWriter, r *http.Request, p Principal) {
	s.ServeEvents(w, r, r.PathValue("id"), p.Claims)
}

// ServeEvents streams an account's events as Server-Sent Events: "balance"
// (data: the balance) after every change of it, and "job" (data: the job)
// after every change of one of its jobs. Each event has an id; a client
// that reconnects with Last-Event-ID gets the events it missed, or, when
// they are no longer known, a fresh "balance" first. Comments keep idle
// connections alive. The caller must have checked access to the account.
//
// cred is the user credential (token or session) the stream was opened
// with, nil for the admin key. The stream ends when cred expires (checked
// against the engine's clock at every event and heartbeat) or is revoked:
// at once for a revocation made through this node, and at the next
// heartbeat (which reads the store) for one made through another node.
func (s *Server) ServeEvents(w http.ResponseWriter, r *http.Request, accountID string, cred *Claims) {
	if _, err := s.Engine.GetAccount(r.Context(), accountID); err != nil {
		s.writeError(w, r, err)
		return
	}
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = r.URL.Query().Get("last_event_id")
	}
	sub, err := s.events.subscribe(accountID, lastID, cred)
	if err != nil {
		if ledger.ErrorCode(err) == ledger.ETooMany {
			w.Header().Set("Retry-After", "10")
		}
		s.writeError(w, r, err)
		return
	}
	c := sub.c
	defer s.events.unsubscribeClient(accountID, c)
	rc := http.NewResponseController(w)
	c.mu.Lock()
	c.abort = func() { _ = rc.SetWriteDeadline(time.Now()) }
	c.mu.Unlock()
	defer c.finish()
	// The server's read timeout would end the stream (its background
	// read of the idle connection times out), so streams have none.
	_ = rc.SetReadDeadline(time.Time{})

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)

	var buf bytes.Buffer
	send := func() bool {
		if buf.Len() == 0 {
			return true
		}
		if c.arm(rc) != nil {
			return false
		}
		_, err := w.Write(buf.Bytes())
		buf.Reset()
		return err == nil && rc.Flush() == nil
	}
	add := func(e sseEvent) {
		fmt.Fprintf(&buf, "id: %s\nevent: %s\ndata: %s\n\n", s.events.eventID(e.seq), e.name, e.data)
	}
	fmt.Fprintf(&buf, "retry: %d\n\n", eventRetryMs)
	if sub.resync {
		bal, err := s.Engine.Balance(r.Context(), accountID)
		if err != nil {
			return
		}
		add(sseEvent{seq: sub.snapshot, name: "balance", data: mustJSON(bal)})
	}
	for _, e := range sub.replay {
		add(e)
	}
	if !send() {
		return
	}
	tick := time.NewTicker(s.events.heartbeat)
	defer tick.Stop()
	for {
		select {
		case e := <-c.ch:
			add(e)
		more:
			for range EventBufferSize {
				select {
				case e := <-c.ch:
					add(e)
				default:
					break more
				}
			}
		case <-tick.C:
			if cred != nil && s.streamRevoked(r.Context(), *cred) {
				return
			}
			buf.WriteString(": ping\n\n")
		case <-c.gone:
			return
		case <-r.Context().Done():
			return
		}
		if cred != nil && s.Engine.Now().Unix() >= cred.ExpiresAt {
			return
		}
		if !send() {
			return
		}
	}
}

// streamRevoked reports whether a stream's credential was revoked, or
// cannot be checked now (the stream then ends too; its client reconnects
// and is asked again).
func (s *Server) streamRevoked(ctx context.Context, c Claims) bool {
	ctx, cancel := context.WithTimeout(ctx, eventRevocationCheckTimeout)
	defer cancel()
	err := s.checkRevoked(ctx, c)
	if err != nil && !errors.Is(err, ErrCredentialRevoked) {
		s.log.Warn("event stream: could not check its credential", "account", c.Account, "err", err)
	}
	return err != nil
}
