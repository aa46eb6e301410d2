package web_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/elevid/elevid/web"
)

func TestClientIPTrustsOnlyConfiguredProxies(t *testing.T) {
	proxy, err := web.ParseProxy("10.0.0.0/8")
	if err != nil {
		t.Fatal(err)
	}
	single, _ := web.ParseProxy("192.0.2.9")
	trusted := web.ClientIPs{Trusted: []netip.Prefix{proxy, single}}
	none := web.ClientIPs{}
	cases := []struct {
		name   string
		c      web.ClientIPs
		remote string
		hdr    map[string]string
		want   string
	}{
		{"no proxy configured: forged XFF ignored", none, "203.0.113.5:1234", map[string]string{"X-Forwarded-For": "198.51.100.1"}, "203.0.113.5"},
		{"untrusted peer: forged XFF ignored", trusted, "203.0.113.5:1234", map[string]string{"X-Forwarded-For": "198.51.100.1"}, "203.0.113.5"},
		{"trusted proxy: its XFF used", trusted, "10.1.2.3:1234", map[string]string{"X-Forwarded-For": "198.51.100.1"}, "198.51.100.1"},
		{"rightmost untrusted hop wins over a forged left part", trusted, "10.1.2.3:1234", map[string]string{"X-Forwarded-For": "1.2.3.4, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"single trusted address", trusted, "192.0.2.9:80", map[string]string{"X-Forwarded-For": "198.51.100.7"}, "198.51.100.7"},
		{"Forwarded header", trusted, "10.1.2.3:1234", map[string]string{"Forwarded": `for=1.2.3.4, for="[2001:db8::1]:4711";proto=https`}, "2001:db8::1"},
		{"trusted proxy without header", trusted, "10.1.2.3:1234", nil, "10.1.2.3"},
		{"garbage from the proxy keeps the proxy", trusted, "10.1.2.3:1234", map[string]string{"X-Forwarded-For": "unknown"}, "10.1.2.3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = c.remote
			for k, v := range c.hdr {
				r.Header.Set(k, v)
			}
			var got string
			c.c.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = web.ClientIP(r) })).ServeHTTP(httptest.NewRecorder(), r)
			if got != c.want {
				t.Fatalf("ClientIP = %q, want %q", got, c.want)
			}
		})
	}
	if _, err := web.ParseProxy("10.0.0.0/33"); err == nil {
		t.Fatal("a bad CIDR parsed")
	}
}
