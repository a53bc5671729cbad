package app

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/creditd/creditd/ledger"
)

// Rate limits are kept per node, in memory, as token buckets that refill on
// the engine's clock (so the test clock drives them). Three tables:
//
//   - users: one bucket per account, spent by each request of its user
//     tokens and web sessions (limits.requests_per_second_per_user, burst
//     limits.requests_burst_per_user). The admin and worker keys are the
//     product's own backend and workers: they are not limited and never
//     reach a table.
//   - failures: one bucket per client address, spent by each failed
//     authentication (limits.auth_failures_per_minute_per_address, burst
//     limits.auth_failures_burst_per_address). A credential is checked
//     before the bucket is looked at, so a valid one is never refused
//     because others failed from the same address.
//   - uploads: one bucket per account, spent by each upload
//     (limits.asset_uploads_per_minute_per_account).
//
// Over a limit the error is too_many_requests with the whole seconds to
// wait in Details["retry_after_seconds"]; the edges answer 429 with
// Retry-After (httpx.SetRetryAfter).

// RateLimitKeysMax bounds the entries of each rate-limit table (accounts,
// client addresses). When a table is full, the buckets that have refilled
// (keys idle long enough to be back at their burst, which a new bucket
// equals) are dropped; if that frees less than a quarter of the table,
// arbitrary others are dropped until it does, so a sweep runs at most once
// per RateLimitKeysMax/4 new keys. A dropped key starts again with a full
// burst.
const RateLimitKeysMax = 100_000

// ipv6PrefixBits is how much of an IPv6 address names one client: a /64 is
// one network's hosts, which a single client can use all of.
const ipv6PrefixBits = 64

// limiterTable is a bounded map of token buckets.
type limiterTable[K comparable] struct {
	mu    sync.Mutex
	m     map[K]*rate.Limiter
	limit rate.Limit
	burst int
	max   int
}

func newLimiterTable[K comparable](perSecond float64, burst, max int) *limiterTable[K] {
	return &limiterTable[K]{m: map[K]*rate.Limiter{}, limit: rate.Limit(perSecond), burst: burst, max: max}
}

// take spends one token of key's bucket at now. Without one it returns
// false and how long until there is one.
func (t *limiterTable[K]) take(key K, now time.Time) (wait time.Duration, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.m[key]
	if l == nil {
		if len(t.m) >= t.max {
			t.evict(now)
		}
		l = rate.NewLimiter(t.limit, t.burst)
		t.m[key] = l
	}
	if l.AllowN(now, 1) {
		return 0, true
	}
	missing := 1 - l.TokensAt(now)
	return time.Duration(missing / float64(t.limit) * float64(time.Second)), false
}

// evict makes room for new keys (see RateLimitKeysMax). t.mu is held.
func (t *limiterTable[K]) evict(now time.Time) {
	full := float64(t.burst)
	for k, l := range t.m {
		if l.TokensAt(now) >= full {
			delete(t.m, k)
		}
	}
	for k := range t.m {
		if len(t.m) <= t.max-t.max/4 {
			break
		}
		delete(t.m, k)
	}
}

// size is the number of keys held.
func (t *limiterTable[K]) size() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// limiters are the Service's rate-limit tables; a nil table is a limit
// turned off.
type limiters struct {
	users    *limiterTable[string]
	failures *limiterTable[netip.Addr]
	uploads  *limiterTable[string] // never nil (the limit is at least 1)
}

// rateLimits returns the tables, made on first use from the engine's
// limits.
func (s *Service) rateLimits() *limiters {
	s.limitsOnce.Do(func() { s.limits = newLimiters(s.cfg) })
	return s.limits
}

func newLimiters(cfg *ledger.Config) *limiters {
	l := cfg.Limits
	out := &limiters{}
	if l.RequestsPerSecondPerUser > 0 {
		out.users = newLimiterTable[string](float64(l.RequestsPerSecondPerUser), l.RequestsBurstPerUser, RateLimitKeysMax)
	}
	out.uploads = newLimiterTable[string](float64(l.AssetUploadsPerMinutePerAccount)/60, l.AssetUploadsPerMinutePerAccount, RateLimitKeysMax)
	if l.AuthFailuresPerMinutePerAddress > 0 {
		out.failures = newLimiterTable[netip.Addr](float64(l.AuthFailuresPerMinutePerAddress)/60, l.AuthFailuresBurstPerAddress, RateLimitKeysMax)
	}
	return out
}

// LimitUser counts one request of a signed-in user (a user token or a web
// session) of an account against limits.requests_per_second_per_user.
// Over the limit it returns a too_many_requests error carrying the seconds
// to wait; otherwise nil.
func (s *Service) LimitUser(accountID string) error {
	t := s.rateLimits().users
	if t == nil {
		return nil
	}
	wait, ok := t.take(accountID, s.eng.Now())
	if ok {
		return nil
	}
	s.countLimited("user")
	return tooMany(wait, fmt.Sprintf("more than %g requests per second for this account; slow down", float64(t.limit)))
}

// AuthFailed counts a failed authentication (a credential that was
// presented and is wrong, expired or altered) from a client address
// against limits.auth_failures_per_minute_per_address (an IPv6 address
// counts as its /64). Within the limit it returns nil and the caller
// answers as it would have; beyond it, a too_many_requests error carrying
// the seconds to wait. Call it only after the credential was found not
// valid.
func (s *Service) AuthFailed(client netip.Addr) error {
	t := s.rateLimits().failures
	if t == nil {
		return nil
	}
	wait, ok := t.take(clientKey(client), s.eng.Now())
	if ok {
		return nil
	}
	s.countLimited("auth_failure")
	return tooMany(wait, "too many failed authentications from this address; try again later")
}

// LimitUpload admits one upload of the account under
// asset_uploads_per_minute_per_account on this node (a token bucket of
// that many, refilled at that many a minute), or returns
// too_many_requests with the seconds to wait.
func (s *Service) LimitUpload(accountID string) error {
	t := s.rateLimits().uploads
	wait, ok := t.take(accountID, s.eng.Now())
	if ok {
		return nil
	}
	s.countLimited("upload")
	secs := retryAfterSeconds(wait)
	e := ledger.Errorf(ledger.ETooMany, "at most %d uploads per minute; try again in %d s", t.burst, secs)
	e.Details = map[string]any{"retry_after_seconds": secs}
	return e
}

// retryAfterSeconds is a wait in whole seconds, at least 1.
func retryAfterSeconds(wait time.Duration) int64 {
	return max(int64((wait+time.Second-1)/time.Second), 1)
}

// tooMany is the too_many_requests error, carrying the seconds to wait.
func tooMany(wait time.Duration, msg string) error {
	secs := retryAfterSeconds(wait)
	return &ledger.Error{Code: ledger.ETooMany, Message: msg, Details: map[string]any{"retry_after_seconds": secs}}
}

func (s *Service) countLimited(limit string) {
	s.limited.WithLabelValues(limit).Inc()
}

// clientKey is the failure table's key of a client: its address, or for
// IPv6 its /64 network.
func clientKey(a netip.Addr) netip.Addr {
	a = a.WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(ipv6PrefixBits); err == nil {
			return p.Addr()
		}
	}
	return a
}
