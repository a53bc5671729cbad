package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/ledger"
)

// DefaultSchedule is the wait after each failed attempt of a delivery
// before the next: the default of the configuration's
// webhooks.retry_schedule_seconds (ledger.Webhooks). Each wait is
// lengthened by up to JitterFraction of itself at random (never
// shortened).
var DefaultSchedule = ledger.DefaultConfig().Webhooks.Schedule()

// Defaults of Options.
const (
	// JitterFraction bounds the random lengthening of each wait.
	JitterFraction = 0.1
	// DefaultPollInterval is how often Run looks for new events and due
	// deliveries.
	DefaultPollInterval = time.Second
	// eventsPerRead is how many events one fan-out reads.
	eventsPerRead = 500
	// claimBatch is how many deliveries a sender claims at once; its
	// lease covers sending them all, one after another, at Timeout each.
	claimBatch = 5
	leaseFor   = claimBatch*Timeout + time.Minute
	// claimRounds bounds the claims of one sender per Tick, so that a
	// Tick's senders end.
	claimRounds = 20
)

// Store is what the dispatcher reads and writes: the webhook tables and
// the events of the outbox.
type Store interface {
	ledger.WebhookStore
	EventsAfter(ctx context.Context, afterSeq int64, limit int) ([]ledger.WebhookEvent, error)
	GetEvent(ctx context.Context, id string) (*ledger.WebhookEvent, error)
}

// Options configure a Dispatcher.
type Options struct {
	Store  Store
	Clock  ledger.Clock
	Logger *slog.Logger
	// Registry receives the dispatcher's metrics; nil: none.
	Registry prometheus.Registerer
	// AllowPrivate lets deliveries reach private, loopback and link-local
	// addresses (tests, and receivers on the same network).
	AllowPrivate bool
	// Client sends the requests; nil: NewClient(AllowPrivate).
	Client *http.Client
	// Schedule is the wait after each failed attempt (nil:
	// DefaultSchedule); DisableAfter disables a failing endpoint (0:
	// DefaultDisableAfter); PollInterval paces Run (0:
	// DefaultPollInterval).
	Schedule     []time.Duration
	DisableAfter time.Duration
	PollInterval time.Duration
}

// Dispatcher delivers the store's events to the webhook endpoints. It is
// safe for concurrent use; several, on several nodes sharing a
// PostgreSQL store, deliver each event once per endpoint between them.
type Dispatcher struct {
	o   Options
	log *slog.Logger

	mu   sync.Mutex
	busy map[string]bool // endpoints whose sender runs on this node
	wg   sync.WaitGroup

	attempts *prometheus.CounterVec
	disabled prometheus.Counter
	gaveUp   prometheus.Counter
}

// New returns a Dispatcher; Run (or Tick) makes it work.
func New(o Options) *Dispatcher {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Client == nil {
		o.Client = NewClient(o.AllowPrivate)
	}
	if o.Schedule == nil {
		o.Schedule = DefaultSchedule
	}
	if o.DisableAfter <= 0 {
		o.DisableAfter = ledger.DefaultConfig().Webhooks.DisableAfter()
	}
	if o.PollInterval <= 0 {
		o.PollInterval = DefaultPollInterval
	}
	d := &Dispatcher{o: o, log: o.Logger, busy: map[string]bool{}}
	d.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "creditd_webhook_attempts_total", Help: "Webhook delivery attempts by result (succeeded, failed).",
	}, []string{"result"})
	d.disabled = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "creditd_webhook_endpoints_disabled_total", Help: "Webhook endpoints disabled after failing for the disable period.",
	})
	d.gaveUp = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "creditd_webhook_deliveries_failed_total", Help: "Webhook deliveries given up after their last scheduled attempt.",
	})
	if o.Registry != nil {
		o.Registry.MustRegister(d.attempts, d.disabled, d.gaveUp)
	}
	return d
}

// Run ticks every PollInterval until ctx ends, then waits for the
// attempts in flight (a cancelled attempt is not recorded: its lease
// lapses and it is sent again).
func (d *Dispatcher) Run(ctx context.Context) {
	t := time.NewTicker(d.o.PollInterval)
	defer t.Stop()
	for {
		if err := d.Tick(ctx); err != nil && ctx.Err() == nil {
			d.log.Warn("webhook dispatch", "err", err)
		}
		select {
		case <-ctx.Done():
			d.Wait()
			return
		case <-t.C:
		}
	}
}

// RunOnce is Tick followed by Wait: every due delivery is attempted once
// before it returns (tests drive the dispatcher with it and a test clock).
func (d *Dispatcher) RunOnce(ctx context.Context) error {
	err := d.Tick(ctx)
	d.Wait()
	return err
}

// Wait waits for the senders that Tick started.
func (d *Dispatcher) Wait() { d.wg.Wait() }

// Tick fans the new events out to the endpoints that want them, then
// starts a sender for every enabled endpoint that has none running on
// this node; it does not wait for them (Wait does).
func (d *Dispatcher) Tick(ctx context.Context) error {
	eps, err := d.o.Store.ListWebhookEndpoints(ctx, ledger.ListWebhookEndpointsParams{EnabledOnly: true})
	if err != nil {
		return err
	}
	if err := d.fanOut(ctx, eps); err != nil {
		return err
	}
	for i := range eps {
		ep := eps[i]
		d.mu.Lock()
		if d.busy[ep.ID] {
			d.mu.Unlock()
			continue
		}
		d.busy[ep.ID] = true
		d.mu.Unlock()
		d.wg.Add(1)
		go func() {
			defer func() {
				d.mu.Lock()
				delete(d.busy, ep.ID)
				d.mu.Unlock()
				d.wg.Done()
			}()
			d.send(ctx, &ep)
		}()
	}
	return nil
}

// fanOut records the deliveries of the events after the cursor, a page
// at a time, each page with the cursor's move (compare-and-set: when
// another node moved it first, the page is read again from there).
func (d *Dispatcher) fanOut(ctx context.Context, eps []ledger.WebhookEndpoint) error {
	for {
		from, err := d.o.Store.WebhookCursor(ctx)
		if err != nil {
			return err
		}
		evs, err := d.o.Store.EventsAfter(ctx, from, eventsPerRead)
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		now := d.o.Clock.Now()
		var ds []*ledger.WebhookDelivery
		for _, ev := range evs {
			for i := range eps {
				if eps[i].Wants(ev.Type) {
					ds = append(ds, &ledger.WebhookDelivery{ID: ledger.NewID("wd"), EndpointID: eps[i].ID, EventID: ev.ID,
						EventType: ev.Type, EventSeq: ev.Seq, Status: ledger.WebhookDeliveryPending, NextRetryAt: now,
						CreatedAt: now, UpdatedAt: now})
				}
			}
		}
		moved, err := d.o.Store.FanOutWebhookEvents(ctx, ledger.FanOutWebhookParams{FromSeq: from, ToSeq: evs[len(evs)-1].Seq, Deliveries: ds})
		if err != nil {
			return err
		}
		if moved && len(evs) < eventsPerRead {
			return nil
		}
	}
}

// send claims the endpoint's due deliveries and attempts them one after
// another, until none is due (or claimRounds claims).
func (d *Dispatcher) send(ctx context.Context, ep *ledger.WebhookEndpoint) {
	for range claimRounds {
		now := d.o.Clock.Now()
		ds, err := d.o.Store.ClaimWebhookDeliveries(ctx, ledger.ClaimWebhookDeliveriesParams{
			EndpointID: ep.ID, Now: now, LeaseUntil: now.Add(leaseFor), Limit: claimBatch})
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn("webhook claim", "endpoint", ep.ID, "err", err)
			}
			return
		}
		if len(ds) == 0 {
			return
		}
		sortDue(ds)
		for i := range ds {
			if disabled := d.attempt(ctx, ep, &ds[i]); disabled || ctx.Err() != nil {
				return
			}
		}
	}
}

// sortDue orders claimed deliveries as they fell due (the claim's
// RETURNING has no order).
func sortDue(ds []ledger.WebhookDelivery) {
	for i := 1; i < len(ds); i++ {
		for j := i; j > 0 && (ds[j].NextRetryAt.Before(ds[j-1].NextRetryAt) ||
			ds[j].NextRetryAt.Equal(ds[j-1].NextRetryAt) && ds[j].Seq < ds[j-1].Seq); j-- {
			ds[j], ds[j-1] = ds[j-1], ds[j]
		}
	}
}

// Body is a delivery's JSON body.
type Body struct {
	Type      string          `json:"type"`
	Timestamp time.Time       `json:"timestamp"`
	Data      json.RawMessage `json:"data"`
}

// attempt sends one claimed delivery and records its outcome; it reports
// whether the endpoint was disabled by it.
func (d *Dispatcher) attempt(ctx context.Context, ep *ledger.WebhookEndpoint, dl *ledger.WebhookDelivery) bool {
	ev, err := d.o.Store.GetEvent(ctx, dl.EventID)
	var status int
	var dur time.Duration
	var errText string
	switch {
	case ledger.ErrorCode(err) == ledger.ENotFound:
		errText = "the event no longer exists"
	case err != nil:
		if ctx.Err() == nil {
			d.log.Warn("webhook event read", "event", dl.EventID, "err", err)
		}
		return false // the lease lapses and the attempt is made again
	default:
		status, dur, errText, err = d.post(ctx, ep, ev)
		if err != nil {
			return false
		}
	}
	now := d.o.Clock.Now()
	ok := status >= 200 && status < 300
	dl.Attempt++
	dl.ResponseStatus, dl.DurationMS, dl.Error = status, dur.Milliseconds(), errText
	switch {
	case ok:
		dl.Status, dl.NextRetryAt = ledger.WebhookDeliverySucceeded, time.Time{}
	case dl.Attempt-1 < len(d.o.Schedule) && ev != nil:
		dl.Status, dl.NextRetryAt = ledger.WebhookDeliveryPending, now.Add(jitter(d.o.Schedule[dl.Attempt-1]))
	default:
		dl.Status, dl.NextRetryAt = ledger.WebhookDeliveryFailed, time.Time{}
	}
	result := "failed"
	if ok {
		result = "succeeded"
	}
	d.attempts.WithLabelValues(result).Inc()
	recorded, since, err := d.o.Store.RecordWebhookAttempt(context.WithoutCancel(ctx), ledger.WebhookAttempt{Delivery: dl, Succeeded: ok, At: now})
	if err != nil {
		d.log.Warn("webhook attempt record", "delivery", dl.ID, "err", err)
		return false
	}
	if !recorded {
		return false
	}
	if dl.Status == ledger.WebhookDeliveryFailed {
		d.gaveUp.Inc()
		d.log.Warn("webhook delivery failed: no attempt left", "delivery", dl.ID, "endpoint", ep.ID, "event", dl.EventID, "attempts", dl.Attempt)
	}
	if ok || since.IsZero() || now.Sub(since) < d.o.DisableAfter {
		return false
	}
	off, err := d.o.Store.DisableFailingWebhookEndpoint(context.WithoutCancel(ctx), ep.ID, since, now)
	if err != nil {
		d.log.Warn("webhook endpoint disable", "endpoint", ep.ID, "err", err)
		return false
	}
	if off {
		d.disabled.Inc()
		d.log.Warn("webhook endpoint disabled: every attempt failed", "endpoint", ep.ID, "url", ep.URL,
			"failing_since", since, "disable_after", d.o.DisableAfter.String())
	}
	return off
}

// jitter lengthens a wait by up to JitterFraction of it.
func jitter(w time.Duration) time.Duration {
	return w + time.Duration(rand.Float64()*JitterFraction*float64(w))
}

// post makes one request. It returns the answer's status (0: none), the
// time it took and the error to show; err is non-nil only when ctx ended
// (the attempt is then not recorded).
func (d *Dispatcher) post(ctx context.Context, ep *ledger.WebhookEndpoint, ev *ledger.WebhookEvent) (status int, dur time.Duration, errText string, err error) {
	data := ev.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	body, err := json.Marshal(Body{Type: ev.Type, Timestamp: ev.CreatedAt.UTC(), Data: data})
	if err != nil {
		return 0, 0, "the event's data is not JSON", nil
	}
	now := d.o.Clock.Now()
	secrets := []string{ep.Secret}
	if ep.PreviousSecret != "" && now.Before(ep.PreviousSecretExpiresAt) {
		secrets = append(secrets, ep.PreviousSecret)
	}
	sig, err := SignatureHeader(secrets, ev.ID, now, body)
	if err != nil {
		return 0, 0, err.Error(), nil
	}
	rctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, ep.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, clean(err.Error()), nil
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "creditd-webhooks/1")
	req.Header.Set(HeaderID, ev.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(HeaderSignature, sig)
	start := time.Now()
	res, err := d.o.Client.Do(req)
	if err != nil {
		dur = time.Since(start)
		if ctx.Err() != nil {
			return 0, dur, "", ctx.Err()
		}
		var ue interface{ Timeout() bool }
		if errors.As(err, &ue) && ue.Timeout() {
			return 0, dur, fmt.Sprintf("no answer within %s", Timeout), nil
		}
		return 0, dur, clean(err.Error()), nil
	}
	excerpt, _ := io.ReadAll(io.LimitReader(res.Body, ResponseBytesMax))
	res.Body.Close()
	dur = time.Since(start)
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return res.StatusCode, dur, "", nil
	}
	msg := "HTTP " + strconv.Itoa(res.StatusCode)
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		msg += " (redirects are not followed)"
	}
	if s := clean(string(excerpt)); s != "" {
		msg += ": " + s
	}
	return res.StatusCode, dur, msg, nil
}

// clean makes text storable and short: valid UTF-8 without NUL or other
// control characters but newlines and tabs, at most ResponseBytesMax
// bytes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' && r != '\t' || r == 0x7f {
			return -1
		}
		return r
	}, s)
	for len(s) > ResponseBytesMax {
		_, n := utf8.DecodeLastRuneInString(s)
		s = s[:len(s)-n]
	}
	return strings.TrimSpace(s)
}
