package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCert is a self-signed certificate with its PEM files' contents.
type testCert struct {
	cert          *x509.Certificate
	certPEM, keyP []byte
}

// newTestCert makes a self-signed certificate for names (DNS names or IP
// addresses) with the given serial number.
func newTestCert(t *testing.T, serial int64, names ...string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true, IsCA: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	kb, _ := x509.MarshalECPrivateKey(key)
	return testCert{cert: c,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyP:    pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})}
}

// install writes c to certFile and keyFile with modification time mtime.
func (c testCert) install(t *testing.T, certFile, keyFile string, mtime time.Time) {
	t.Helper()
	for f, b := range map[string][]byte{certFile: c.certPEM, keyFile: c.keyP} {
		tmp := f + ".new"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(tmp, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f); err != nil { // as certbot and cert-manager replace files
			t.Fatal(err)
		}
	}
}

func TestTLSConfigValidation(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	newTestCert(t, 1, "other.example").install(t, certFile, keyFile, time.Now())
	secrets := fmt.Sprintf("secrets: {session_keys: [%s], encryption_keys: [%s], pairwise_secret: %s}\n", key32, key32, key32)
	tests := []struct {
		name, yaml string
		want       []string // every one must be reported, at once
	}{
		{"both files and acme", "issuer: https://id.example.dk\n" + secrets +
			"server: {tls: {cert_file: /nonexistent/cert.pem, key_file: /nonexistent/key.pem, acme: {hosts: [id.example.dk], cache_dir: /tmp/x}}}",
			[]string{"server.tls: set either cert_file and key_file or acme, not both",
				"server.tls.cert_file: /nonexistent/cert.pem: no such file", "server.tls.key_file: /nonexistent/key.pem: no such file"}},
		{"key without cert", "issuer: https://id.example.dk\n" + secrets + "server: {tls: {key_file: k.pem}}",
			[]string{"server.tls.cert_file: is required with key_file"}},
		{"certificate for another host", "issuer: https://id.example.dk\n" + secrets +
			fmt.Sprintf("server: {tls: {cert_file: %s, key_file: %s}}", certFile, keyFile),
			[]string{`server.tls.cert_file: the certificate does not name the issuer's host "id.example.dk" (it names other.example)`}},
		{"key that does not match", "issuer: https://other.example\n" + secrets +
			fmt.Sprintf("server: {tls: {cert_file: %s, key_file: %s}}", certFile, certFile),
			[]string{"server.tls.cert_file: cannot use"}},
		{"acme without hosts or cache", "issuer: https://id.example.dk\n" + secrets + "server: {tls: {acme: {email: nobody}}}",
			[]string{`server.tls.acme.hosts: list the host names`, "server.tls.acme.cache_dir: is required",
				`server.tls.acme.email: "nobody" is not an e-mail address`}},
		{"acme hosts without the issuer, bad names", "issuer: https://id.example.dk\n" + secrets +
			"server: {tls: {acme: {hosts: [www.example.dk, 10.0.0.1, '*.example.dk'], cache_dir: /tmp/x, directory_url: 'http://ca.example/dir', ca_file: /nonexistent/ca.pem}}}",
			[]string{`server.tls.acme.hosts: must include the issuer's host "id.example.dk"`,
				`server.tls.acme.hosts[1]: "10.0.0.1" is not a host name`, `server.tls.acme.hosts[2]: "*.example.dk" is not a host name`,
				`server.tls.acme.directory_url: "http://ca.example/dir" is not an https URL`, "server.tls.acme.ca_file: /nonexistent/ca.pem: no such file"}},
		{"tls on an http issuer, redirect listener", "server: {http_redirect_listen: '127.0.0.1:8080', tls: {acme: {hosts: [localhost], cache_dir: /tmp/x}}}",
			[]string{"issuer: must be https when server.tls is set", "server.http_redirect_listen: must differ from listen"}},
		{"redirect without tls, no host", "server: {http_redirect_listen: ':80'}",
			[]string{"server.http_redirect_listen: needs server.tls", "server.http_redirect_listen: give a host"}},
		{"redirect listen not an address", "issuer: https://id.example.dk\n" + secrets +
			"server: {http_redirect_listen: 'port80', tls: {acme: {hosts: [id.example.dk], cache_dir: /tmp/x}}}",
			[]string{`server.http_redirect_listen: "port80" is not host:port`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(writeConfig(t, tt.yaml), noEnv)
			if err != nil {
				t.Fatal(err)
			}
			err = cfg.Validate()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing %q in\n%v", w, err)
				}
			}
		})
	}

	// Decoded strictly: a misspelt key is an error, not a silent default.
	if _, err := LoadConfig(writeConfig(t, "server: {tls: {acme: {host: [id.example.dk]}}}"), noEnv); err == nil || !strings.Contains(err.Error(), "field host not found") {
		t.Errorf("unknown key under server.tls.acme: %v", err)
	}

	// Valid: files naming the issuer's host; acme with the issuer's host.
	newTestCert(t, 2, "id.example.dk").install(t, certFile, keyFile, time.Now())
	for _, y := range []string{
		fmt.Sprintf("server: {http_redirect_listen: '0.0.0.0:80', tls: {cert_file: %s, key_file: %s}}", certFile, keyFile),
		"server: {http_redirect_listen: '0.0.0.0:80', tls: {acme: {email: it@example.dk, hosts: [id.example.dk], cache_dir: /var/lib/elevid/acme}}}",
	} {
		cfg, err := LoadConfig(writeConfig(t, "issuer: https://id.example.dk\nlisten: '0.0.0.0:443'\n"+secrets+y), noEnv)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", y, err)
		}
	}
}

func TestCertReloaderChecksAtMostEveryInterval(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a, b := newTestCert(t, 101, "localhost"), newTestCert(t, 102, "localhost")
	t0 := time.Now().Add(-time.Hour)
	a.install(t, certFile, keyFile, t0)
	now := t0
	var logs bytes.Buffer
	r := &certReloader{certFile: certFile, keyFile: keyFile, every: 2 * time.Second, now: func() time.Time { return now },
		log: slog.New(slog.NewTextHandler(&logs, nil))}
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	serial := func() int64 {
		c, err := r.GetCertificate(nil)
		if err != nil {
			t.Fatal(err)
		}
		return c.Leaf.SerialNumber.Int64()
	}
	b.install(t, certFile, keyFile, t0.Add(time.Minute))
	now = now.Add(time.Second)
	if got := serial(); got != 101 {
		t.Fatalf("re-read before the interval: serial %d", got)
	}
	now = now.Add(2 * time.Second)
	if got := serial(); got != 102 {
		t.Fatalf("after the interval: serial %d, want the new certificate", got)
	}
	// A half-replaced pair (new certificate, old key) is refused; the
	// previous certificate stays in use, and the complete pair is taken
	// at the next check.
	c := newTestCert(t, 103, "localhost")
	if err := os.WriteFile(certFile, c.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Second)
	if got := serial(); got != 102 || !strings.Contains(logs.String(), "do not load") {
		t.Fatalf("mismatched pair: serial %d, log %q", got, logs.String())
	}
	if err := os.WriteFile(keyFile, c.keyP, 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(3 * time.Second)
	if got := serial(); got != 103 {
		t.Fatalf("completed pair: serial %d", got)
	}
}

// startServe runs `elevid serve --config` with yaml until stop is called
// or the test ends, and waits until ready succeeds.
func startServe(t *testing.T, yaml string, ready func() error) (log *syncBuffer, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", writeConfig(t, yaml)}, out, out, noEnv) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("serve ended: %v\n%s", err, out.String())
		default:
		}
		err := ready()
		if err == nil {
			return out, stop
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve not ready: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestServeTLSFromFiles serves an https issuer directly from certificate
// files: HTTP/2, HSTS and Secure cookies, the redirect listener, and a
// replaced certificate reaches new connections.
func TestServeTLSFromFiles(t *testing.T) {
	ports := freePorts(t, 2)
	listen, redirect := fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	a, b := newTestCert(t, 201, "localhost"), newTestCert(t, 202, "localhost")
	a.install(t, certFile, keyFile, time.Now().Add(-time.Hour))
	roots := x509.NewCertPool()
	roots.AddCert(a.cert)
	roots.AddCert(b.cert)
	client := func() *http.Client {
		return &http.Client{
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"},
				ForceAttemptHTTP2: true, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	issuer := fmt.Sprintf("https://localhost:%d", ports[0])
	_, _ = startServe(t, fmt.Sprintf(`listen: %s
issuer: %s
database: %s
log: {level: warn}
secrets: {session_keys: [%s], encryption_keys: [%s], pairwise_secret: %s}
server: {metrics_listen: '', http_redirect_listen: '%s', tls: {cert_file: %s, key_file: %s}}
`, listen, issuer, filepath.Join(dir, "elevid.db"), key32, key32, key32, redirect, certFile, keyFile), func() error {
		resp, err := client().Get(issuer + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})

	served := func() (int64, *http.Response) {
		resp, err := client().Get(issuer + "/lang/en?return=/privacy")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].SerialNumber.Int64(), resp
	}
	serial, resp := served()
	if serial != 201 || resp.Proto != "HTTP/2.0" {
		t.Fatalf("serial %d over %s, want 201 over HTTP/2.0", serial, resp.Proto)
	}
	if c := resp.Header.Get("Set-Cookie"); !strings.Contains(c, "; Secure") || !strings.Contains(c, "HttpOnly") {
		t.Errorf("cookie over TLS: %q", c)
	}
	if h := resp.Header.Get("Strict-Transport-Security"); h == "" {
		t.Error("no HSTS over TLS")
	}

	// The redirect listener does not trust the Host header.
	req, _ := http.NewRequest(http.MethodGet, "http://"+redirect+"/console?x=1", nil)
	req.Host = "evil.example"
	rresp, err := client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rresp.Body.Close()
	if loc := rresp.Header.Get("Location"); rresp.StatusCode != http.StatusMovedPermanently || loc != issuer+"/console?x=1" {
		t.Errorf("redirect = %d %q", rresp.StatusCode, loc)
	}
	req, _ = http.NewRequest(http.MethodPost, "http://"+redirect+"/token", strings.NewReader("a=b"))
	if rresp, err = client().Do(req); err != nil {
		t.Fatal(err)
	}
	rresp.Body.Close()
	if rresp.StatusCode != http.StatusPermanentRedirect {
		t.Errorf("POST redirect = %d, want 308", rresp.StatusCode)
	}

	// Replace the files as a renewal would; a new connection gets the new
	// certificate within the check interval (2 s).
	b.install(t, certFile, keyFile, time.Now())
	start := time.Now()
	for serial != 202 {
		if time.Since(start) > 6*time.Second {
			t.Fatalf("still serving serial %d %s after the files changed", serial, time.Since(start))
		}
		time.Sleep(200 * time.Millisecond)
		serial, _ = served()
	}
	t.Logf("new certificate served %s after the files changed", time.Since(start).Round(100*time.Millisecond))
}
