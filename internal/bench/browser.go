package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/descope/virtualwebauthn"
)

// Browse plays the browser for an authorization URL: it follows ElevID's
// redirects, logs in with the first pupil's passkey when sent to /login,
// and returns the URL the browser is finally sent to at the platform's
// redirect URI (with code and state, or an error). The .ci OIDC client
// test uses it for the one step a headless client cannot do itself.
func Browse(ctx context.Context, base string, f *Fixture, authURL string) (string, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	n, err := newNodes([]string{strings.TrimSuffix(base, "/")})
	if err != nil {
		return "", err
	}
	return browse(ctx, c, n, f, f.Pupils[0], authURL)
}

// browse follows next (a path or URL) as a browser would, each request to
// the next node.
func browse(ctx context.Context, c *http.Client, n *nodes, f *Fixture, p FixturePupil, next string) (string, error) {
	for range 8 {
		u, err := url.Parse(next)
		if err != nil {
			return "", err
		}
		if u.Path == "/login" {
			// The login's answer may be the platform's redirect itself.
			if next, err = passkeyLogin(ctx, c, n, f, p, u.Query().Get("return_to")); err != nil {
				return "", err
			}
		} else {
			resp, err := get(ctx, c, n.url(next))
			if err != nil {
				return "", err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			next = resp.Header.Get("Location")
			if resp.StatusCode/100 != 3 || next == "" {
				return "", fmt.Errorf("%s: status %d", u.Path, resp.StatusCode)
			}
		}
		if strings.HasPrefix(next, f.RedirectURI) {
			return next, nil
		}
	}
	return "", errors.New("too many redirects")
}

func get(ctx context.Context, c *http.Client, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

func doJSON(c *http.Client, req *http.Request, v any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, b)
	}
	return json.Unmarshal(b, v)
}

// passkeyLogin runs the discoverable login at /login/begin and
// /login/finish and returns where the login sends the browser.
func passkeyLogin(ctx context.Context, c *http.Client, n *nodes, f *Fixture, p FixturePupil, returnTo string) (string, error) {
	post := func(path string, body any, out any) error {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url(path), bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		return doJSON(c, req, out)
	}
	var begun struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	if err := post("/login/begin", map[string]string{}, &begun); err != nil {
		return "", fmt.Errorf("login begin: %w", err)
	}
	opts, err := virtualwebauthn.ParseAssertionOptions(string(begun.Options))
	if err != nil {
		return "", err
	}
	auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: p.Handle})
	rp := virtualwebauthn.RelyingParty{ID: f.RPID, Name: "ElevID", Origin: f.Origin}
	cred := virtualwebauthn.CreateAssertionResponse(rp, auth, p.Credential, *opts)
	var done struct {
		OK   bool   `json:"ok"`
		Next string `json:"next"`
	}
	if err := post("/login/finish", map[string]any{"ceremony": begun.Ceremony, "credential": json.RawMessage(cred), "return_to": returnTo}, &done); err != nil {
		return "", fmt.Errorf("login finish: %w", err)
	}
	if !done.OK || done.Next == "" {
		return "", errors.New("login finish: not ok")
	}
	return done.Next, nil
}

// newTransport is the load generator's HTTP transport. Its connections to
// a loopback server come from many loopback addresses (127.0.0.2 …
// 127.0.0.251, in turn), as virtual pupils on many devices would: the
// server's per-address limits (3000 login ceremonies per 15 minutes)
// would otherwise refuse a long run from one address.
func newTransport(concurrency int) *http.Transport {
	var next atomic.Uint32
	d := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Transport{MaxIdleConns: concurrency * 4, MaxIdleConnsPerHost: concurrency * 4, IdleConnTimeout: time.Minute,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if ip := net.ParseIP(host); err == nil && (host == "localhost" || ip != nil && ip.IsLoopback() && ip.To4() != nil) {
				n := next.Add(1)
				ld := *d
				ld.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+n%250))}
				if c, err := ld.DialContext(ctx, "tcp4", addr); err == nil {
					return c, nil
				}
			}
			return d.DialContext(ctx, network, addr)
		}}
}
