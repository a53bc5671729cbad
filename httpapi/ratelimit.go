package httpapi

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/creditd/creditd/ledger"
)

// Rate limits are kept per node, in memory, as token buckets that refill on
// the engine's clock (so the test clock drives them). Two tables:
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
//
// Over either limit the answer is 429 too_many_requests with Retry-After.

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

// EnvTrustedProxies names the reverse proxies whose X-Forwarded-For is
// believed (see ParseTrustedProxies).
const EnvTrustedProxies = "CREDITD_TRUSTED_PROXIES"

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

// limiters are the server's rate-limit tables; a nil table is a limit
// turned off.
type limiters struct {
	users    *limiterTable[string]
	failures *limiterTable[netip.Addr]
	uploads  *limiterTable[string] // never nil (the limit is at least 1)
}

// rateLimits returns the tables, made on first use from the engine's limits.
func (s *Server) rateLimits() *limiters {
	s.limitersOnce.Do(func() {
		l := s.Engine.Config().Limits
		s.limiters = &limiters{}
		if l.RequestsPerSecondPerUser > 0 {
			s.limiters.users = newLimiterTable[string](float64(l.RequestsPerSecondPerUser), l.RequestsBurstPerUser, RateLimitKeysMax)
		}
		s.limiters.uploads = newLimiterTable[string](float64(l.AssetUploadsPerMinutePerAccount)/60, l.AssetUploadsPerMinutePerAccount, RateLimitKeysMax)
		if l.AuthFailuresPerMinutePerAddress > 0 {
			s.limiters.failures = newLimiterTable[netip.Addr](float64(l.AuthFailuresPerMinutePerAddress)/60, l.AuthFailuresBurstPerAddress, RateLimitKeysMax)
		}
	})
	return s.limiters
}

// LimitUser counts one request of a signed-in user (a user token or a web
// session) of an account against limits.requests_per_second_per_user. Over
// the limit it sets Retry-After on w and returns a too_many_requests error
// for the caller to answer with; otherwise nil.
func (s *Server) LimitUser(w http.ResponseWriter, accountID string) error {
	t := s.rateLimits().users
	if t == nil {
		return nil
	}
	wait, ok := t.take(accountID, s.Engine.Now())
	if ok {
		return nil
	}
	s.countLimited("user")
	return tooMany(w, wait, fmt.Sprintf("more than %g requests per second for this account; slow down", float64(t.limit)))
}

// AuthFailed counts a failed authentication (a credential that was
// presented and is wrong, expired or altered) from r's client address
// against limits.auth_failures_per_minute_per_address. Within the limit it
// returns nil and the caller answers as it would have; beyond it, it sets
// Retry-After on w and returns a too_many_requests error. Call it only
// after the credential was found not valid.
func (s *Server) AuthFailed(w http.ResponseWriter, r *http.Request) error {
	t := s.rateLimits().failures
	if t == nil {
		return nil
	}
	wait, ok := t.take(s.clientKey(r), s.Engine.Now())
	if ok {
		return nil
	}
	s.countLimited("auth_failure")
	return tooMany(w, wait, "too many failed authentications from this address; try again later")
}

// tooMany sets Retry-After (whole seconds, at least 1) and returns the
// too_many_requests error, which carries the same number.
func tooMany(w http.ResponseWriter, wait time.Duration, msg string) error {
	secs := int64((wait + time.Second - 1) / time.Second)
	secs = max(secs, 1)
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	return &ledger.Error{Code: ledger.ETooMany, Message: msg, Details: map[string]any{"retry_after_seconds": secs}}
}

func (s *Server) countLimited(limit string) {
	if s.limited != nil {
		s.limited.WithLabelValues(limit).Inc()
	}
}

// ParseTrustedProxies parses a comma-separated list of IP addresses and
// CIDR prefixes (CREDITD_TRUSTED_PROXIES), e.g. "10.0.0.0/8, 192.0.2.7".
// A request whose peer is in the list is taken to come from the right-most
// address of its X-Forwarded-For that is not in the list; from any other
// peer, X-Forwarded-For is ignored.
func ParseTrustedProxies(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for item := range strings.SplitSeq(list, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		if strings.Contains(item, "/") {
			p, err := netip.ParsePrefix(item)
			if err != nil {
				return nil, fmt.Errorf("%s: %q is not a CIDR prefix", EnvTrustedProxies, item)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(item)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%s: %q is not an IP address", EnvTrustedProxies, item)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// trusted reports whether a is one of s.TrustedProxies.
func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address of the client that sent r: the peer's, or,
// when the peer is a trusted proxy, the right-most address of
// X-Forwarded-For that is not a trusted proxy (each proxy appends the
// address it was reached from, so that one was written by a proxy we
// trust; what lies left of it is the client's to make up). An address
// that cannot be parsed ends the walk at the last trusted hop.
func (s *Server) ClientAddr(r *http.Request) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if len(s.TrustedProxies) == 0 || !s.trusted(peer) {
		return peer
	}
	addr := peer
	hs := r.Header.Values("X-Forwarded-For")
	for i := len(hs) - 1; i >= 0; i-- {
		h := hs[i]
		for h != "" {
			item := h
			if j := strings.LastIndexByte(h, ','); j >= 0 {
				item, h = h[j+1:], h[:j]
			} else {
				h = ""
			}
			a, err := netip.ParseAddr(strings.TrimSpace(item))
			if err != nil {
				return addr
			}
			a = a.Unmap()
			if !s.trusted(a) {
				return a
			}
			addr = a
		}
	}
	return addr
}

// clientKey is the failure table's key of r's client: its address, or for
// IPv6 its /64 network.
func (s *Server) clientKey(r *http.Request) netip.Addr {
	a := s.ClientAddr(r).WithZone("")
	if a.Is6() {
		if p, err := a.Prefix(ipv6PrefixBits); err == nil {
			return p.Addr()
		}
	}
	return a
}

// parseAddr is the IP of a RemoteAddr ("host:port"); the zero Addr when it
// has none (all such peers share one key).
func parseAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	if a, err := netip.ParseAddr(remote); err == nil {
		return a.Unmap()
	}
	return netip.Addr{}
}
