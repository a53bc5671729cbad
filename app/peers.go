package app

import (
	"crypto/rand"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"log/slog"
)

// peers is the Service's state for what the edges share: the key that
// signs credentials, the event hub, the rate-limit tables and the asset
// locks.
type peers struct {
	sessionKey []byte
	publicURL  string
	events     *hub
	limitsOnce sync.Once
	limits     *limiters
	limited    *prometheus.CounterVec
}

// initPeers sets up the credentials key, the rate limits and the event hub
// (which subscribes to the engine at once).
func (s *Service) initPeers(o Options) {
	reg := o.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.sessionKey = o.SessionKey
	if len(s.sessionKey) == 0 {
		s.sessionKey = make([]byte, 32)
		_, _ = rand.Read(s.sessionKey)
	}
	s.publicURL = o.PublicURL
	s.limited = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "creditd_http_rate_limited_total", Help: "Requests refused with 429 by a rate limit (user, auth_failure, upload).",
	}, []string{"limit"})
	reg.MustRegister(s.limited)
	s.events = newHub(s.eng, s.log, reg, o.EventHeartbeat)
}

// Logger is the Service's logger, for the edges over it.
func (s *Service) Logger() *slog.Logger { return s.log }
