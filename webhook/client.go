package webhook

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// Limits of an attempt.
const (
	// Timeout bounds one attempt: connecting, sending and reading the
	// answer.
	Timeout = 10 * time.Second
	// ResponseBytesMax is how much of an answer's body is kept.
	ResponseBytesMax = 1024
	// responseHeaderBytesMax bounds an answer's headers.
	responseHeaderBytesMax = 16 << 10
)

// ErrForbiddenAddress is a connection refused because the address is
// private, loopback, link-local or otherwise not public.
var ErrForbiddenAddress = errors.New("webhook: the address is not public")

// notPublic are the ranges, beside those netip's predicates name, that a
// webhook may not reach: "this network", shared address space (CGNAT),
// IETF protocol assignments, benchmarking, reserved, and the IPv6
// documentation, NAT64 and discard prefixes.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("100::/64"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// PublicAddr reports whether a webhook may connect to ip: not loopback,
// private (RFC 1918, fc00::/7), link-local, multicast, unspecified or in
// another range that is not the public internet. IPv4-mapped IPv6
// addresses are judged as the IPv4 address.
func PublicAddr(ip netip.Addr) bool {
	ip = ip.Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// checkDial is the dialer's Control: it runs for every address the
// dialer connects to, after DNS resolution, so a name that resolves (or
// re-resolves, DNS rebinding) to a private address is refused.
func checkDial(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, address)
	}
	if !PublicAddr(ap.Addr()) {
		return fmt.Errorf("%w: %s", ErrForbiddenAddress, ap.Addr())
	}
	return nil
}

// NewClient returns the HTTP client deliveries are sent with: Timeout per
// request, no redirects followed (a 3xx answer is a failed attempt), no
// proxy from the environment, and, unless allowPrivate, connections only
// to public addresses (checked on the resolved address at connect time).
func NewClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: Timeout, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		d.Control = checkDial
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		TLSHandshakeTimeout:    Timeout,
		ResponseHeaderTimeout:  Timeout,
		MaxResponseHeaderBytes: responseHeaderBytesMax,
		MaxIdleConnsPerHost:    2,
		IdleConnTimeout:        90 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}
