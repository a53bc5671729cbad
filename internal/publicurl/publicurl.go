// Package publicurl decides the base URL (scheme://host) of the links
// creditd hands out: sign-in links and Stripe Checkout's return URLs.
//
// The base is CREDITD_PUBLIC_URL when it is set. Without it, a request's
// own scheme and Host are used only when the request reached creditd over
// a loopback connection (127.0.0.0/8, ::1: it came from the machine
// itself, as on a developer's laptop) and its Host names a loopback host
// (localhost, *.localhost, a loopback address). Anywhere else the Host
// header is whatever the client sent, and a link built from it could carry
// a user's sign-in token to another site (Host: evil.example), so such a
// request is refused with 409 conflict naming the setting. A reverse proxy
// on the same machine connects over loopback too, which is why the Host
// must be a loopback name as well: behind any proxy, set the URL.
package publicurl

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/creditd/creditd/ledger"
)

// Env is the environment variable with the base URL users reach creditd at.
const Env = "CREDITD_PUBLIC_URL"

// FromRequest returns scheme://host of r (https when r came over TLS or
// through a proxy that says X-Forwarded-Proto: https) when the request may
// be trusted to name the server (see the package comment), and otherwise
// an error (ledger.EConflict) that names Env.
func FromRequest(r *http.Request) (string, error) {
	if !Loopback(r) {
		return "", ledger.Errorf(ledger.EConflict,
			"this server does not know its public address: set %s (e.g. https://app.example.com) so that links point to it; "+
				"without it only requests to a loopback address (localhost) get links", Env)
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	return scheme + "://" + r.Host, nil
}

// Loopback reports whether r reached the server over a loopback connection
// and names a loopback host.
func Loopback(r *http.Request) bool {
	local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
	tcp, ok := local.(*net.TCPAddr)
	if !ok || !tcp.IP.IsLoopback() {
		return false
	}
	return LoopbackHost(r.Host)
}

// LoopbackHost reports whether a Host header's host (with or without a
// port) is a loopback name or address.
func LoopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().IsLoopback()
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}
