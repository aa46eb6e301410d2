package web

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// ParseProxy parses a trusted proxy given as a CIDR ("10.0.0.0/8") or a
// single address ("192.0.2.7").
func ParseProxy(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

type clientIPKey struct{}

// ClientIPs computes the client address of every request, once, for every
// rate limit and log: the connection's address, or, when the connection
// comes from a trusted proxy, the rightmost address in X-Forwarded-For
// (else Forwarded) that is not itself a trusted proxy. A header from any
// other peer is ignored, so a client cannot choose its own address.
type ClientIPs struct {
	Trusted []netip.Prefix
}

// Handler stores the client address of each request for ClientIP.
func (c ClientIPs) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ip := c.Of(r)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), clientIPKey{}, ip)))
	})
}

// Of computes the client address of r (see ClientIPs).
func (c ClientIPs) Of(r *http.Request) string {
	peer := remoteHost(r)
	if !c.trusted(peer) {
		return peer
	}
	hops := forwardedFor(r)
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // a trusted proxy wrote something else: keep the last good hop
		}
		client = a.Unmap().String()
		if !c.trusted(client) {
			break
		}
	}
	return client
}

func (c ClientIPs) trusted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range c.Trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// forwardedFor returns the hops of X-Forwarded-For, or when absent the
// for= values of Forwarded, left (client) to right (nearest proxy).
func forwardedFor(r *http.Request) []string {
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		for part := range strings.SplitSeq(h, ",") {
			hops = append(hops, strings.TrimSpace(part))
		}
	}
	if len(hops) > 0 {
		return hops
	}
	for _, h := range r.Header.Values("Forwarded") {
		for elem := range strings.SplitSeq(h, ",") {
			for pair := range strings.SplitSeq(elem, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok || !strings.EqualFold(k, "for") {
					continue
				}
				v = strings.Trim(v, `"`)
				if strings.HasPrefix(v, "[") { // [2001:db8::1]:4711
					if end := strings.Index(v, "]"); end > 0 {
						v = v[1:end]
					}
				} else if host, _, err := net.SplitHostPort(v); err == nil {
					v = host
				}
				hops = append(hops, v)
			}
		}
	}
	return hops
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return a.Unmap().String()
	}
	return host
}

// ClientIP returns the client address of r as computed by the ClientIPs
// handler; without it (tests, tools) the connection's address.
func ClientIP(r *http.Request) string {
	if ip, ok := r.Context().Value(clientIPKey{}).(string); ok {
		return ip
	}
	return remoteHost(r)
}
