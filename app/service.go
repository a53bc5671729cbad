package app

import (
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
}

// Service runs creditd's use cases over an engine. It is safe for
// concurrent use.
type Service struct {
	eng   *engine.Engine
	store ledger.Store
	blobs blob.Store
	cfg   *ledger.Config
	log   *slog.Logger

	peers
}

// New returns a Service.
func New(o Options) *Service {
	s := &Service{eng: o.Engine, store: o.Store, blobs: o.Blobs, cfg: o.Engine.Config(), log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.initPeers(o)
	return s
}

// Config returns the ledger configuration.
func (s *Service) Config() *ledger.Config { return s.cfg }
