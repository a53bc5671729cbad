package app

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// Limits of the live event streams of an account.
const (
	// EventBufferSize bounds the events queued for one stream. A client
	// that falls this far behind is dropped (its stream ends and it
	// reconnects with Last-Event-ID), so a slow reader never holds up the
	// engine or the other clients.
	EventBufferSize = 64
	// EventStreamsPerAccountMax caps the concurrent streams of one account;
	// beyond it a new stream is refused with too_many_requests.
	EventStreamsPerAccountMax = 8
	// EventHistoryPerAccount is how many recent events of an account are
	// kept for Last-Event-ID replay.
	EventHistoryPerAccount = 256
	// EventAccountsMax bounds the accounts whose recent events are kept
	// (the least recently watched are forgotten first).
	EventAccountsMax = 10000
	// EventHeartbeatDefault is the interval of keep-alive comments.
	EventHeartbeatDefault = 15 * time.Second
	// eventRemoteJobsMax bounds the job ids remembered per account while
	// an event from another node waits to be read.
	eventRemoteJobsMax = 64
	// eventRemoteReadTimeout bounds the fresh reads for such an event.
	eventRemoteReadTimeout = 5 * time.Second
	// eventRevocationCheckTimeout bounds a stream's heartbeat check that
	// its credential was not revoked through another node.
	eventRevocationCheckTimeout = 5 * time.Second
)

// ErrStreamDropped is Subscription.Arm's answer once the hub has dropped
// the stream (it fell behind, was revoked, or the hub closed).
var ErrStreamDropped = errors.New("stream dropped")

// Event is one event of an account's stream: "balance" (Data: the
// balance) or "job" (Data: the job). ID says where a reconnecting client
// resumes (Last-Event-ID).
type Event struct {
	ID   string
	Name string
	Data []byte
	seq  uint64
}

// streamClient is one open stream.
type streamClient struct {
	ch   chan Event
	gone chan struct{} // closed when the hub drops or closes the stream
	// cred is the user credential the stream was opened with (nil for the
	// admin key): the stream ends when it expires or is revoked.
	cred *Claims

	mu      sync.Mutex
	serving bool   // the edge still owns the connection
	abort   func() // makes a pending write fail at once
}

func (c *streamClient) kill() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.serving && c.abort != nil {
		c.abort()
	}
}

// streamAccount is what the hub keeps for one watched account.
type streamAccount struct {
	clients map[*streamClient]struct{}
	// history holds the latest events, oldest first; every event with a
	// seq above floor is in it.
	history []Event
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
func (s *Service) CloseEvents() { s.events.close() }

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
	var out []Event
	for _, j := range jobs {
		out = append(out, Event{Name: "job", Data: mustJSON(j)})
	}
	var fingerprint []byte
	if bal != nil {
		b := *bal
		b.AsOf = time.Time{}
		fingerprint = mustJSON(b)
		out = append(out, Event{Name: "balance", Data: mustJSON(bal)})
	}
	var kills []*streamClient
	h.mu.Lock()
	a := h.accounts[accountID]
	if a == nil || h.closed {
		h.mu.Unlock()
		return
	}
	for _, e := range out {
		if e.Name == "balance" {
			if bytes.Equal(a.balance, fingerprint) {
				continue
			}
			a.balance = fingerprint
		}
		h.seq++
		e.seq, e.ID = h.seq, h.eventID(h.seq)
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

// subscribe adds a stream of an account. It returns the events after
// lastEventID, or resync with the seq a fresh balance is to carry when
// those are no longer known.
func (h *hub) subscribe(accountID, lastEventID string, cred *Claims) (c *streamClient, replay []Event, resync bool, snapshot uint64, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, nil, false, 0, ledger.Errorf(ledger.EUnavailable, "the service is shutting down")
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
		return nil, nil, false, 0, ledger.Errorf(ledger.ETooMany, "at most %d event streams per account; close one first", EventStreamsPerAccountMax)
	}
	c = &streamClient{ch: make(chan Event, EventBufferSize), gone: make(chan struct{}), serving: true, cred: cred}
	a.clients[c] = struct{}{}
	a.active = h.seq
	h.streams.Inc()
	if seq, ok := h.parseID(lastEventID); ok && seq >= a.floor && seq <= h.seq {
		for _, e := range a.history {
			if e.seq > seq {
				replay = append(replay, e)
			}
		}
		return c, replay, false, 0, nil
	}
	return c, nil, true, h.seq, nil
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

// Subscription is one open event stream of an account. The edge that
// serves it writes Start, then each event of Events, and a keep-alive at
// every Heartbeat, until Gone is closed, Expired or Revoked says so, or
// its client leaves; then it calls Close.
type Subscription struct {
	s       *Service
	account string
	c       *streamClient
	// Start are the events to send first: the events after the client's
	// Last-Event-ID, or, when those are no longer known, a fresh balance.
	Start []Event
}

// SubscribeEvents opens a stream of an account's events: "balance" after
// every change of its balance, and "job" after every change of one of its
// jobs. The caller must have checked access to the account. lastEventID
// is the client's Last-Event-ID ("" for none). cred is the user credential
// (token or session) the stream is opened with, nil for the admin key:
// the stream ends when cred expires or is revoked (at once for a
// revocation through this node, at the next heartbeat for one through
// another node). Beyond EventStreamsPerAccountMax streams of the account
// the error is too_many_requests.
func (s *Service) SubscribeEvents(ctx context.Context, accountID, lastEventID string, cred *Claims) (*Subscription, error) {
	if _, err := s.eng.GetAccount(ctx, accountID); err != nil {
		return nil, err
	}
	h := s.events
	c, replay, resync, snapshot, err := h.subscribe(accountID, lastEventID, cred)
	if err != nil {
		return nil, err
	}
	sub := &Subscription{s: s, account: accountID, c: c, Start: replay}
	if resync {
		bal, err := s.eng.Balance(ctx, accountID)
		if err != nil {
			sub.Close()
			return nil, err
		}
		sub.Start = []Event{{ID: h.eventID(snapshot), Name: "balance", Data: mustJSON(bal), seq: snapshot}}
	}
	return sub, nil
}

// Events delivers the stream's events as they commit.
func (sub *Subscription) Events() <-chan Event { return sub.c.ch }

// Gone is closed when the hub drops the stream (it fell behind, its
// credential was revoked through this node, or the service is closing).
func (sub *Subscription) Gone() <-chan struct{} { return sub.c.gone }

// Heartbeat is the interval of keep-alive comments (and of the check
// that the stream's credential was not revoked through another node).
func (sub *Subscription) Heartbeat() time.Duration { return sub.s.events.heartbeat }

// SetAbort gives the hub a function that makes a pending write of the
// stream fail at once (the edge sets a past write deadline); the hub calls
// it when it drops the stream.
func (sub *Subscription) SetAbort(abort func()) {
	sub.c.mu.Lock()
	sub.c.abort = abort
	sub.c.mu.Unlock()
}

// Arm prepares a write: it answers ErrStreamDropped once the stream was
// dropped, and otherwise runs prepare (which extends the write deadline)
// under the lock a drop takes after closing Gone, so a write armed before
// a drop is aborted and none is armed after it.
func (sub *Subscription) Arm(prepare func()) error {
	c := sub.c
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.gone:
		return ErrStreamDropped
	default:
	}
	prepare()
	return nil
}

// Expired reports whether the stream's credential has expired (on the
// engine's clock).
func (sub *Subscription) Expired() bool {
	return sub.c.cred != nil && sub.s.eng.Now().Unix() >= sub.c.cred.ExpiresAt
}

// Revoked reports whether the stream's credential was revoked, or cannot
// be checked now (the stream then ends too; its client reconnects and is
// asked again). It reads the store.
func (sub *Subscription) Revoked(ctx context.Context) bool {
	cred := sub.c.cred
	if cred == nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, eventRevocationCheckTimeout)
	defer cancel()
	err := sub.s.checkRevoked(ctx, *cred)
	if err != nil && !errors.Is(err, ErrCredentialRevoked) {
		sub.s.log.Warn("event stream: could not check its credential", "account", cred.Account, "err", err)
	}
	return err != nil
}

// Close ends the stream: the hub forgets it and no longer aborts its
// writes.
func (sub *Subscription) Close() {
	sub.s.events.unsubscribeClient(sub.account, sub.c)
	sub.c.mu.Lock()
	sub.c.serving = false
	sub.c.mu.Unlock()
}
