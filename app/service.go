package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/creditd/creditd/blob"
	"github.com/creditd/creditd/ledger"
	"github.com/creditd/creditd/ledger/engine"
)

// Options configure a Service.
type Options struct {
	Engine *engine.Engine
	// Store is the engine's store; only the Service reads it directly.
	Store  ledger.Store
	Blobs  blob.Store
	Logger *slog.Logger

	// SessionKey is the HMAC key that signs user tokens, sign-in links and
	// session cookies (at least SessionKeyBytesMin bytes). Nodes that share
	// it accept each other's credentials. Empty: a random key, so
	// credentials do not survive a restart.
	SessionKey []byte
	// PublicURL is the base URL users reach the web app at (e.g.
	// "https://app.example.com"), used in sign-in links. Empty: the base
	// the caller passes (see NewLoginLink).
	PublicURL string
	// Registry receives the Service's metrics (rate-limited requests,
	// event streams); nil: a private one.
	Registry *prometheus.Registry
	// EventHeartbeat is the interval of keep-alive comments on event
	// streams (0: EventHeartbeatDefault).
	EventHeartbeat time.Duration
	// WebhooksAllowPrivate lets webhook endpoints name private, loopback
	// and link-local addresses (serve's --webhooks-allow-private-urls).
	WebhooksAllowPrivate bool
}

// Service runs creditd's use cases over an engine. It is safe for
// concurrent use.
type Service struct {
	// webhooksAllowPrivate: Options.WebhooksAllowPrivate.
	webhooksAllowPrivate bool
	eng                  *engine.Engine
	store                ledger.Store
	blobs                blob.Store
	cfg                  *ledger.Config
	log                  *slog.Logger

	assetLocks assetLocks

	peers
}

// New returns a Service.
func New(o Options) *Service {
	s := &Service{eng: o.Engine, store: o.Store, blobs: o.Blobs, cfg: o.Engine.Config(), log: o.Logger,
		webhooksAllowPrivate: o.WebhooksAllowPrivate}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.initPeers(o)
	return s
}

// Config returns the ledger configuration.
func (s *Service) Config() *ledger.Config { return s.cfg }

// healthProbeAccount is the account Ping looks up: text the store takes,
// yet no account's id (ids start with a letter or digit), so the lookup
// is a cheap miss on every store.
const healthProbeAccount = "~healthz"

// Ping reports whether the store answers: nil when it does.
func (s *Service) Ping(ctx context.Context) error {
	if _, err := s.store.GetAccount(ctx, healthProbeAccount); err != nil && ledger.ErrorCode(err) != ledger.ENotFound {
		return err
	}
	return nil
}

// Access says whether a caller may see an account's resources; nil admits
// every account. A resource of an account the caller may not see answers
// as a missing one (404), so that its existence does not leak.
type Access func(accountID string) bool

func (a Access) admits(accountID string) bool { return a == nil || a(accountID) }

// PageRequest asks for one page of a list, newest first: at most Limit
// items (0: page_size_default) before the cursor (0: from the newest).
type PageRequest struct {
	AccountID string
	Cursor    int64
	Limit     int
}

// Page is one page of a list; Next is the cursor of the next page, 0 when
// there is none.
type Page[T any] struct {
	Items []T
	Next  int64
}

// Now returns the engine clock's time.
func (s *Service) Now() time.Time { return s.eng.Now() }

// Sweep applies at once the time rules due at now, which the engine's
// sweeper otherwise applies on its own schedule: pending holds that
// expired release their credits, jobs no worker serves are interrupted,
// and the staged outputs of ended jobs are deleted. A test clock calls it
// after every move. A failed output sweep is logged; the sweeper tries
// again.
func (s *Service) Sweep(ctx context.Context, now time.Time) {
	s.eng.SweepHolds(ctx, now)
	s.eng.SweepDeadlines(ctx, now)
	s.eng.SweepUnservedJobs(ctx, now)
	if _, err := s.eng.SweepStagedOutputs(ctx); err != nil {
		s.log.Warn("staged output sweep failed", "err", err)
	}
}
