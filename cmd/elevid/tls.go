package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// TLSConfig makes `elevid serve` terminate TLS itself on Listen: either a
// certificate and key from files (reloaded when they change), or
// certificates obtained and renewed over ACME (Let's Encrypt or any RFC
// 8555 CA). Both empty: plain http, e.g. behind a reverse proxy.
type TLSConfig struct {
	CertFile string      `yaml:"cert_file"` // PEM certificate chain, leaf first
	KeyFile  string      `yaml:"key_file"`  // PEM private key
	ACME     *ACMEConfig `yaml:"acme"`
}

// ACMEConfig obtains certificates with golang.org/x/crypto/acme/autocert,
// answering TLS-ALPN-01 challenges on Listen (port 443 in production) and
// HTTP-01 challenges on server.http_redirect_listen (port 80) when set.
type ACMEConfig struct {
	Email        string   `yaml:"email"`         // contact for the CA (expiry notices); optional
	DirectoryURL string   `yaml:"directory_url"` // default: Let's Encrypt production
	CacheDir     string   `yaml:"cache_dir"`     // account key and certificates; must persist (e.g. /var/lib/elevid/acme)
	Hosts        []string `yaml:"hosts"`         // the only names certificates are requested for; must include the issuer's host
	CAFile       string   `yaml:"ca_file"`       // PEM roots to trust for the directory itself (a private CA); default: the system's
}

// Enabled reports whether serve terminates TLS itself.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" || t.ACME != nil }

// validateTLS returns the problems of server.tls and
// server.http_redirect_listen, each with its key path.
func (c Config) validateTLS() []string {
	var p []string
	add := func(key, format string, args ...any) { p = append(p, key+": "+fmt.Sprintf(format, args...)) }
	t := c.Server.TLS
	issuerHost := ""
	if u, err := url.Parse(c.Issuer); err == nil {
		issuerHost = u.Hostname()
	}
	if t.Enabled() && !c.Secure() {
		add("issuer", "must be https when server.tls is set (the address clients use, e.g. https://%s)", orDefault(issuerHost, "id.example.dk"))
	}
	if t.ACME != nil && (t.CertFile != "" || t.KeyFile != "") {
		add("server.tls", "set either cert_file and key_file or acme, not both")
	}
	switch {
	case t.CertFile == "" && t.KeyFile != "":
		add("server.tls.cert_file", "is required with key_file")
	case t.CertFile != "" && t.KeyFile == "":
		add("server.tls.key_file", "is required with cert_file")
	case t.CertFile != "":
		okFiles := true
		for key, f := range map[string]string{"server.tls.cert_file": t.CertFile, "server.tls.key_file": t.KeyFile} {
			if _, err := os.Stat(f); err != nil {
				add(key, "%v", unwrapPathError(err))
				okFiles = false
			}
		}
		if okFiles {
			if cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile); err != nil {
				add("server.tls.cert_file", "cannot use %s with %s: %v", t.CertFile, t.KeyFile, err)
			} else if issuerHost != "" && cert.Leaf != nil && cert.Leaf.VerifyHostname(issuerHost) != nil {
				add("server.tls.cert_file", "the certificate does not name the issuer's host %q (it names %s)", issuerHost, certNames(cert.Leaf))
			}
		}
	}
	if a := t.ACME; a != nil {
		if len(a.Hosts) == 0 {
			add("server.tls.acme.hosts", "list the host names to obtain certificates for (at least the issuer's host %q)", issuerHost)
		} else if issuerHost != "" && !slices.Contains(a.Hosts, issuerHost) {
			add("server.tls.acme.hosts", "must include the issuer's host %q", issuerHost)
		}
		for i, h := range a.Hosts {
			if !isDNSName(h) {
				add(fmt.Sprintf("server.tls.acme.hosts[%d]", i), "%q is not a host name (no IP addresses, wildcards, ports or schemes)", h)
			}
		}
		if a.CacheDir == "" {
			add("server.tls.acme.cache_dir", "is required: a directory that survives restarts (certificates and the account key are kept there)")
		}
		if a.DirectoryURL != "" {
			if du, err := url.Parse(a.DirectoryURL); err != nil || du.Host == "" || (du.Scheme != "https" && !(du.Scheme == "http" && isLoopback(du.Hostname()))) {
				add("server.tls.acme.directory_url", "%q is not an https URL", a.DirectoryURL)
			}
		}
		if a.Email != "" && (!strings.Contains(a.Email, "@") || strings.ContainsAny(a.Email, " \r\n<>")) {
			add("server.tls.acme.email", "%q is not an e-mail address", a.Email)
		}
		if a.CAFile != "" {
			if _, err := loadCertPool(a.CAFile); err != nil {
				add("server.tls.acme.ca_file", "%v", err)
			}
		}
	}
	if l := c.Server.HTTPRedirectListen; l != "" {
		if !t.Enabled() {
			add("server.http_redirect_listen", "needs server.tls (behind a proxy, let the proxy redirect)")
		}
		if host, port, err := net.SplitHostPort(l); err != nil {
			add("server.http_redirect_listen", "%q is not host:port (e.g. 0.0.0.0:80)", l)
		} else if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			add("server.http_redirect_listen", "bad port %q", port)
		} else if host == "" {
			add("server.http_redirect_listen", "give a host (e.g. 0.0.0.0:80)")
		} else if l == c.Listen {
			add("server.http_redirect_listen", "must differ from listen")
		}
	}
	return p
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Path, pe.Err)
	}
	return err
}

func certNames(c *x509.Certificate) string {
	names := slices.Clone(c.DNSNames)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no DNS names"
	}
	return strings.Join(names, ", ")
}

// isDNSName reports whether h is a plain host name autocert can obtain a
// certificate for.
func isDNSName(h string) bool {
	if h == "" || len(h) > 253 || net.ParseIP(h) != nil || strings.HasSuffix(h, ".") {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}

func loadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// tlsServing is what serve needs to terminate TLS: the listener's
// configuration and the handler of the http→https redirect listener
// (which also answers ACME HTTP-01 challenges).
type tlsServing struct {
	config   *tls.Config
	redirect http.Handler
	warm     func() // obtains the ACME certificate at start; nil for files
}

// newTLSServing builds the TLS side of serve from cfg; nil when
// server.tls is not set.
func newTLSServing(cfg Config, log *slog.Logger) (*tlsServing, error) {
	t := cfg.Server.TLS
	if !t.Enabled() {
		return nil, nil
	}
	s := &tlsServing{config: &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: []string{"h2", "http/1.1"}}}
	redirect := redirectToIssuer(cfg.Issuer)
	if a := t.ACME; a != nil {
		m, err := newACMEManager(*a)
		if err != nil {
			return nil, err
		}
		// A client that sends no server name (a load balancer's health
		// check by IP address) gets the issuer's certificate.
		issuerHost := cfg.WebAuthn.RPID
		if u, err := url.Parse(cfg.Issuer); err == nil {
			issuerHost = u.Hostname()
		}
		s.config.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			if hello.ServerName == "" {
				hello.ServerName = issuerHost
			}
			return m.GetCertificate(hello)
		}
		s.config.NextProtos = append(s.config.NextProtos, acme.ALPNProto) // TLS-ALPN-01
		s.redirect = m.HTTPHandler(redirect)                              // HTTP-01, else the redirect
		s.warm = func() {
			// As a client offering ECDSA would ask, so the first real
			// connection finds the certificate ready (and an operator sees
			// a CA's refusal in the log at start, not at a pupil's login).
			c, err := m.GetCertificate(&tls.ClientHelloInfo{ServerName: issuerHost,
				SignatureSchemes: []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256}, SupportedCurves: []tls.CurveID{tls.CurveP256},
				CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}})
			if err != nil {
				log.Error("could not obtain a TLS certificate over ACME; trying again at the next connection", "host", issuerHost, "err", err)
				return
			}
			log.Info("TLS certificate ready", "host", issuerHost, "not_after", c.Leaf.NotAfter)
		}
		log.Info("TLS certificates from ACME", "directory", m.Client.DirectoryURL, "hosts", a.Hosts, "cache", a.CacheDir)
		return s, nil
	}
	r := &certReloader{certFile: t.CertFile, keyFile: t.KeyFile, every: 2 * time.Second, now: time.Now, log: log}
	if err := r.load(); err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	s.config.GetCertificate = r.GetCertificate
	s.redirect = redirect
	return s, nil
}

// newACMEManager returns the autocert manager of c.
func newACMEManager(c ACMEConfig) (*autocert.Manager, error) {
	client := &acme.Client{DirectoryURL: c.DirectoryURL, UserAgent: "elevid"}
	if client.DirectoryURL == "" {
		client.DirectoryURL = autocert.DefaultACMEDirectory
	}
	if c.CAFile != "" {
		pool, err := loadCertPool(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("server.tls.acme.ca_file: %w", err)
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	if err := os.MkdirAll(c.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("server.tls.acme.cache_dir: %w", err)
	}
	allowed := autocert.HostWhitelist(c.Hosts...)
	return &autocert.Manager{
		Prompt: autocert.AcceptTOS,
		Cache:  autocert.DirCache(c.CacheDir),
		// The HTTP-01 handler checks the request's Host, which carries a
		// port when the CA validates on one other than 80 (a test CA).
		HostPolicy: func(ctx context.Context, host string) error {
			if h, _, err := net.SplitHostPort(host); err == nil {
				host = h
			}
			return allowed(ctx, host)
		},
		Email:  c.Email,
		Client: client,
	}, nil
}

// redirectToIssuer answers every request with a permanent redirect to the
// same path on the issuer: the Host header is not trusted, so the redirect
// never leaves the site.
func redirectToIssuer(issuer string) http.Handler {
	u, _ := url.Parse(issuer)
	base := u.Scheme + "://" + u.Host
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := http.StatusPermanentRedirect // keeps the method and body
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			code = http.StatusMovedPermanently
		}
		http.Redirect(w, r, base+r.URL.RequestURI(), code)
	})
}

// certReloader serves a certificate from files and reloads it when they
// change: at a handshake, at most once per every, it compares the files'
// modification times and sizes with those it loaded. A pair that does not
// load (e.g. the certificate is replaced but the key not yet) is logged
// and the previous certificate stays in use until the next check.
type certReloader struct {
	certFile, keyFile string
	every             time.Duration
	now               func() time.Time
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string // modification times and sizes of the loaded files
	checked time.Time
}

func (r *certReloader) fileStamp() (string, error) {
	var b strings.Builder
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "%d/%d;", fi.ModTime().UnixNano(), fi.Size())
	}
	return b.String(), nil
}

// load reads the pair unconditionally; the caller holds r.mu or r is not
// shared yet.
func (r *certReloader) load() error {
	stamp, err := r.fileStamp()
	if err != nil {
		return err
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return err
	}
	r.cert, r.stamp, r.checked = &cert, stamp, r.now()
	return nil
}

// GetCertificate implements tls.Config.GetCertificate.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= r.every {
		r.checked = now
		if stamp, err := r.fileStamp(); err != nil {
			r.log.Error("TLS certificate files unreadable; serving the previous certificate", "err", err)
		} else if stamp != r.stamp {
			if err := r.load(); err != nil {
				r.log.Error("TLS certificate files changed but do not load; serving the previous certificate", "err", err)
			} else {
				r.log.Info("TLS certificate reloaded", "file", r.certFile, "not_after", r.cert.Leaf.NotAfter)
			}
		}
	}
	return r.cert, nil
}

// startRedirect serves h on addr until ctx ends; it returns once the
// listener is bound, so a port already in use fails serve at start.
func startRedirect(ctx context.Context, addr string, h http.Handler, log *slog.Logger) (stop func(context.Context) error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("server.http_redirect_listen: %w", err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       15 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       30 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http redirect listener stopped", "err", err)
		}
	}()
	log.Info("http→https redirect listening", "addr", ln.Addr().String())
	return srv.Shutdown, nil
}

// serveTLS wraps ln in TLS when server.tls is set and starts the redirect
// listener when server.http_redirect_listen is; stop ends the latter.
func serveTLS(ctx context.Context, cfg Config, log *slog.Logger, ln net.Listener) (_ net.Listener, stop func(), err error) {
	stop = func() {}
	ts, err := newTLSServing(cfg, log)
	if err != nil {
		ln.Close()
		return nil, stop, err
	}
	if ts == nil {
		if cfg.Secure() {
			log.Info("serving plain http for an https issuer: a TLS-terminating proxy must be in front (or set server.tls)", "issuer", cfg.Issuer)
		}
		return ln, stop, nil
	}
	if cfg.Server.HTTPRedirectListen != "" {
		shutdown, err := startRedirect(ctx, cfg.Server.HTTPRedirectListen, ts.redirect, log)
		if err != nil {
			ln.Close()
			return nil, stop, err
		}
		stop = func() {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = shutdown(sctx)
		}
	}
	if ts.warm != nil {
		go ts.warm()
	}
	return tls.NewListener(ln, ts.config), stop, nil
}
