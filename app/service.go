package app

import (
	"log/slog"

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
}

// Service runs creditd's use cases over an engine. It is safe for
// concurrent use.
type Service struct {
	eng   *engine.Engine
	store ledger.Store
	blobs blob.Store
	cfg   *ledger.Config
	log   *slog.Logger
}

// New returns a Service.
func New(o Options) *Service {
	s := &Service{eng: o.Engine, store: o.Store, blobs: o.Blobs, cfg: o.Engine.Config(), log: o.Logger}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Config returns the ledger configuration.
func (s *Service) Config() *ledger.Config { return s.cfg }
