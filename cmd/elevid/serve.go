package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/elevid/elevid/web"
)

// serve migrates the database, builds the handler and serves until ctx
// ends, then shuts down gracefully.
func serve(ctx context.Context, cfg Config, log *slog.Logger, demo bool, stdout io.Writer) error {
	if demo && cfg.Secure() {
		return fmt.Errorf("--demo is for trying ElevID on your own machine: it publishes a teacher's password and shows every school's mail without sign-in, so it will not run with an https issuer (%s); start without --demo", cfg.Issuer)
	}
	a, v, err := openMigrated(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	log.Info("database ready", "schema_version", v, "postgres", cfg.Postgres())
	if err := a.loadSecrets(ctx); err != nil {
		return err
	}
	if demo {
		if err := seedDemo(ctx, a, stdout); err != nil {
			return fmt.Errorf("demo: %w", err)
		}
	} else if cfg.Secure() {
		if err := refuseDemoTeacher(ctx, a); err != nil {
			return err
		}
	}
	h, wired, err := newHandler(ctx, a, demo)
	if err != nil {
		return err
	}
	// Start-up leaves garbage the size of one Argon2 hash (the console's
	// timing-equaliser, 19 MiB) that Go would return to the system only
	// slowly: return it now, so an idle server's memory is what it needs.
	debug.FreeOSMemory()
	tuneGC(os.Getenv)
	// Every listener is bound before any background job starts, and the
	// jobs have ended before the store closes (defers run in reverse), so
	// a failed start never leaves a job using a closed store.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	var mln net.Listener
	if cfg.Server.MetricsListen != "" {
		if mln, err = net.Listen("tcp", cfg.Server.MetricsListen); err != nil {
			_ = ln.Close()
			return fmt.Errorf("server.metrics_listen: %w", err)
		}
	}
	ln, stopRedirect, err := serveTLS(ctx, cfg, log, ln)
	if err != nil { // serveTLS has closed ln
		if mln != nil {
			_ = mln.Close()
		}
		return err
	}
	defer stopRedirect()
	var jobs sync.WaitGroup
	bg, stopBG := context.WithCancel(ctx)
	defer func() { stopBG(); jobs.Wait() }()
	for _, job := range wired.background {
		jobs.Go(func() { job(bg) })
	}
	srv := &http.Server{
		Handler:           h,
		ReadTimeout:       cfg.Server.ReadTimeout.D(),
		ReadHeaderTimeout: 10 * time.Second,
		WriteTimeout:      cfg.Server.WriteTimeout.D(),
		IdleTimeout:       cfg.Server.IdleTimeout.D(),
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	var msrv *http.Server
	if mln != nil {
		msrv = &http.Server{Handler: metricsHandler(a, cfg.Server.MetricsToken), ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second, ErrorLog: srv.ErrorLog}
		go func() { errc <- msrv.Serve(mln) }()
		log.Info("metrics listening", "addr", mln.Addr().String(), "token", cfg.Server.MetricsToken != "")
	}
	log.Info("ElevID listening", "addr", ln.Addr().String(), "issuer", cfg.Issuer, "demo", demo)
	fmt.Fprintf(stdout, "ElevID is running at %s (listening on %s). Stop with Ctrl-C.\n", cfg.Issuer, ln.Addr())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if msrv != nil {
		_ = msrv.Shutdown(sctx)
		if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Garbage collection while serving. A server's live heap is small (about
// 10 MB) and a login flow allocates a few hundred kB, so at Go's default
// (collect when the heap has doubled) the collector ran several times a
// second and took a sixth of the server's CPU. Letting the heap grow to
// five times the live data (GOGC=400) costs about 20 MB under load; the
// soft limit makes the collector work harder before the heap passes
// 256 MiB, so a large live heap (a big sync, many Argon2 hashes at once)
// does not grow five-fold. GOGC and GOMEMLIMIT, when set, win.
const (
	serveGCPercent   = 400
	serveMemoryLimit = 256 << 20
)

// tuneGC applies the serving defaults above where the environment does
// not set its own, and returns what puts back the settings it changed.
func tuneGC(getenv func(string) string) (restore func()) {
	restore = func() {}
	if getenv("GOGC") == "" {
		old := debug.SetGCPercent(serveGCPercent)
		restore = func() { debug.SetGCPercent(old) }
	}
	if getenv("GOMEMLIMIT") == "" {
		old, gc := debug.SetMemoryLimit(serveMemoryLimit), restore
		restore = func() { gc(); debug.SetMemoryLimit(old) }
	}
	return restore
}

// newHandler builds the whole HTTP handler: routes of every package
// wrapped in the shared middleware.
func newHandler(ctx context.Context, a *app, demo bool) (http.Handler, *wiring, error) {
	site, err := web.New(web.Options{Logger: a.log, Demo: demo, TimeZone: a.cfg.Location()})
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /static/", web.Static())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		site.Render(w, r, http.StatusOK, "home", nil)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := a.store.Ping(pctx); err != nil {
			a.log.Error("readiness: store unreachable", "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "store unreachable\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
	mux.HandleFunc("GET /lang/{lang}", func(w http.ResponseWriter, r *http.Request) {
		lang := r.PathValue("lang")
		if !web.IsLanguage(lang) {
			site.NotFound(w, r)
			return
		}
		http.SetCookie(w, &http.Cookie{Name: "lang", Value: lang, Path: "/", MaxAge: 365 * 24 * 3600,
			HttpOnly: true, Secure: a.cfg.Secure(), SameSite: http.SameSiteLaxMode})
		http.Redirect(w, r, localPath(r.URL.Query().Get("return")), http.StatusSeeOther)
	})
	mux.HandleFunc("/", site.NotFound)

	wired, err := mountFeatures(ctx, a, site, mux, demo)
	if err != nil {
		return nil, nil, err
	}
	var h http.Handler = mux
	h = site.CrossOrigin(h, wired.bypass...)
	h = site.ValidUTF8(h)
	h = web.LimitBody(a.cfg.Server.MaxBodyBytes, h)
	h = site.Recover(h)
	h = web.SecurityHeaders(a.cfg.Secure(), h)
	h = a.metrics.Observe(a.log, h)
	h = web.ClientIPs{Trusted: a.cfg.Proxies()}.Handler(h) // outermost: Observe reads the route the mux sets on its request
	return h, wired, nil
}

// metricsHandler serves the Prometheus metrics at /metrics and Go's
// profiles at /debug/pprof/ (for the separate metrics listener only, which
// is loopback unless a token is set): with token set, only to requests
// that carry it as a bearer token.
func metricsHandler(a *app, token string) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="elevid-metrics"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		mux.ServeHTTP(w, r)
	})
}

// localPath returns p when it is a path on this site, else "/": redirects
// never leave the site.
func localPath(p string) string {
	u, err := url.Parse(p)
	if err != nil || p == "" || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.Contains(p, "\\") {
		return "/"
	}
	return p
}
