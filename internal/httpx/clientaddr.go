package httpx

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// EnvTrustedProxies names the reverse proxies whose X-Forwarded-For is
// believed (see ParseTrustedProxies).
const EnvTrustedProxies = "CREDITD_TRUSTED_PROXIES"

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

// trusted reports whether a is one of proxies.
func trusted(proxies []netip.Prefix, a netip.Addr) bool {
	for _, p := range proxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientAddr is the address of the client that sent r: the peer's, or,
// when the peer is one of the trusted proxies, the right-most address of
// X-Forwarded-For that is not a trusted proxy (each proxy appends the
// address it was reached from, so that one was written by a proxy we
// trust; what lies left of it is the client's to make up). An address
// that cannot be parsed ends the walk at the last trusted hop.
func ClientAddr(r *http.Request, proxies []netip.Prefix) netip.Addr {
	peer := parseAddr(r.RemoteAddr)
	if len(proxies) == 0 || !trusted(proxies, peer) {
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
			if !trusted(proxies, a) {
				return a
			}
			addr = a
		}
	}
	return addr
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
