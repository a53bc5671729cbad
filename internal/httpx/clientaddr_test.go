package httpx_test

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/creditd/creditd/internal/httpx"
)

func TestClientAddr(t *testing.T) {
	proxies, err := httpx.ParseTrustedProxies(" 10.0.0.0/8,192.0.2.7 ,2001:db8::/32,")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"198.51.100.1:5000", []string{"203.0.113.9"}, "198.51.100.1"},
		{"10.0.0.1:5000", nil, "10.0.0.1"},
		{"10.0.0.1:5000", []string{"203.0.113.9"}, "203.0.113.9"},
		{"192.0.2.7:5000", []string{"1.1.1.1, 203.0.113.9, 10.9.9.9"}, "203.0.113.9"},
		{"192.0.2.7:5000", []string{"1.1.1.1", "203.0.113.9,10.9.9.9"}, "203.0.113.9"},
		{"192.0.2.7:5000", []string{"10.2.2.2, 10.9.9.9"}, "10.2.2.2"},
		{"192.0.2.7:5000", []string{"203.0.113.9, garbage, 10.9.9.9"}, "10.9.9.9"},
		{"[::ffff:10.0.0.1]:5000", []string{"::ffff:203.0.113.9"}, "203.0.113.9"},
		{"[2001:db8::1]:5000", []string{"2001:db9::5"}, "2001:db9::5"},
		{"192.0.2.8:5000", []string{"203.0.113.9"}, "192.0.2.8"},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.remote
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := httpx.ClientAddr(r, proxies); got != netip.MustParseAddr(c.want) {
			t.Errorf("%s %q: %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.1:80", "fe80::1%eth0"} {
		if _, err := httpx.ParseTrustedProxies(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
