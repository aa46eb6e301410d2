package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/elevid/elevid/internal/bench"
)

const benchUsage = `Usage:
  elevid bench prepare [--pupils N] [--login-pupils L] [--releases R] [--expired-tokens T]
                       [--fixture FILE]
      create a bench school of enrolled, consented pupils with virtual
      passkeys and a bench platform in the configured database: the first L
      (default 64) of the N pupils are in the fixture and sign in; the rest,
      with R release-log rows and T expired tokens, are filler for the size
      test, bulk-inserted in one transaction (schools of 2,000, classes of 25,
      two guardians each); prints the time taken
  elevid bench login [--url URL]... [--concurrency C] [--duration D] [--fixture FILE]
                     [--metrics-url URL]... [--metrics-token TOKEN]
      drive C virtual pupils through passkey login → authorize → code →
      token → userinfo against a running server; prints flows/s and p50/p95/p99,
      and the server's database work read from its metrics listener
      (default http://server.metrics_listen/metrics, token server.metrics_token).
      Several --url (repeated or comma-separated: nodes of one service on one
      host name, different ports) get the requests in turn, so each flow
      crosses nodes; several --metrics-url are summed; the split of requests
      per node is printed
  elevid bench saml [--url URL] [--concurrency C] [--duration D] [--fixture FILE]
                    [--server-pid PID] [--presign-rate R]
      SP-initiated SAML SSO against a running server for the bench SAML
      service provider of the fixture: each of C (default 8) virtual pupils
      signs in once with its passkey; the SP signs AuthnRequests
      (HTTP-Redirect) for R (default 1000) responses/s over D (at most 30 s
      of them); then, timed for D, each pupil repeats sending one and
      reading the Response's page; after that every Response is checked
      (Issuer, Destination, InResponseTo, audience, validity as of its
      arrival, attributes, the Response's and the Assertion's signature
      with the IdP metadata's certificate). Prints responses/s, p50/p95/p99
      of the exchanges, errors, the server's CPU per response (process
      --server-pid, or the one listening on --url's port), this process's
      CPU inside the window, and the signing and checking outside it
`

// cmdBench runs `elevid bench`.
func cmdBench(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer, args []string) error {
	if len(args) == 0 || (args[0] != "prepare" && args[0] != "login" && args[0] != "saml") {
		fmt.Fprint(out, benchUsage)
		return errors.New("bench: give prepare, login or saml")
	}
	fs := flag.NewFlagSet("bench "+args[0], flag.ContinueOnError)
	fixture := fs.String("fixture", bench.DefaultFixture, "fixture file (pupils, passkeys, platform secret)")
	pupils := fs.Int("pupils", 64, "pupils to prepare: the first --login-pupils sign in with passkeys in the fixture, the rest are filler for the size test")
	loginPupils := fs.Int("login-pupils", 64, "pupils of the fixture, who sign in during the bench")
	releases := fs.Int("releases", 0, "release-log rows over the last year for filler pupils")
	expired := fs.Int("expired-tokens", 0, "expired access tokens (each issued from a sealed authorization code) for filler pupils")
	urls := &listFlag{vals: []string{cfg.Issuer}}
	fs.Var(urls, "url", "base URL of the running server; repeat it or separate URLs by commas for several nodes on one host name (requests go round-robin)")
	defConc := 32
	if args[0] == "saml" {
		defConc = 8
	}
	conc := fs.Int("concurrency", defConc, "concurrent virtual pupils")
	serverPID := fs.Int("server-pid", 0, "bench saml: the server's process id, for its CPU time per response (default: the process listening on --url's port, when on this machine)")
	dur := fs.Duration("duration", 20*time.Second, "how long to run")
	presignRate := fs.Int("presign-rate", bench.DefaultPresignRate, "bench saml: responses per second the AuthnRequests signed before the timed window are for (any more are signed inside it, and counted)")
	defMetrics := ""
	if cfg.Server.MetricsListen != "" {
		defMetrics = "http://" + cfg.Server.MetricsListen + "/metrics"
	}
	metricsURLs := &listFlag{}
	if defMetrics != "" {
		metricsURLs.vals = []string{defMetrics}
	}
	fs.Var(metricsURLs, "metrics-url", "the server's /metrics on its metrics listener; repeat it or separate by commas for several nodes, whose counts are summed (empty: do not read)")
	metricsToken := fs.String("metrics-token", cfg.Server.MetricsToken, "bearer token for --metrics-url")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "saml" {
		f, err := bench.ReadFixture(*fixture)
		if err != nil {
			return err
		}
		if len(urls.vals) != 1 {
			return errors.New("bench saml: give one --url")
		}
		if *presignRate < 1 {
			return errors.New("bench saml: --presign-rate must be at least 1")
		}
		// The generator shares the cores with the server it measures, and
		// checking a Response allocates far more than it keeps live: at
		// Go's default the collector (workers and assists) took a twelfth
		// of its CPU. It collects as serve does (see tuneGC) until the run
		// is over: under 2 %, and a sixth less CPU per response, for 55 MB
		// resident instead of 39 MB with 8 pupils.
		defer tuneGC(os.Getenv)()
		res, err := bench.RunSAML(ctx, bench.SAMLConfig{BaseURL: urls.vals[0], Fixture: f, Concurrency: *conc, Duration: *dur, ServerPID: *serverPID,
			PresignRate: *presignRate})
		if err != nil {
			return err
		}
		res.Print(out)
		if res.Responses == 0 {
			return fmt.Errorf("bench saml: no response passed the checks (%s)", res.FirstError)
		}
		return nil
	}
	if args[0] == "login" {
		f, err := bench.ReadFixture(*fixture)
		if err != nil {
			return err
		}
		res, err := bench.Run(ctx, bench.Config{URLs: urls.vals, Fixture: f, Concurrency: *conc, Duration: *dur,
			MetricsURLs: metricsURLs.vals, MetricsToken: *metricsToken})
		if err != nil {
			return err
		}
		res.Print(out)
		return nil
	}
	var problems []string
	if *pupils < 1 || *loginPupils < 1 {
		problems = append(problems, "--pupils and --login-pupils must be at least 1")
	}
	if *releases < 0 || *expired < 0 {
		problems = append(problems, "--releases and --expired-tokens must not be negative")
	}
	if (*releases > 0 || *expired > 0) && *pupils <= *loginPupils {
		problems = append(problems, "--releases and --expired-tokens go to filler pupils: give --pupils more than --login-pupils")
	}
	if len(problems) > 0 {
		return fmt.Errorf("bench prepare: %s", strings.Join(problems, "; "))
	}
	return withApp(ctx, cfg, log, func(a *app) error {
		start := time.Now()
		f, err := bench.Prepare(ctx, a.store, cfg.WebAuthn.RPID, cfg.WebAuthn.Origins[0], min(*pupils, *loginPupils))
		if err != nil {
			return err
		}
		if err := bench.WriteFixture(*fixture, f); err != nil {
			return err
		}
		fmt.Fprintf(out, "prepared %d pupils; fixture written to %s (%.1fs)\n", len(f.Pupils), *fixture, time.Since(start).Seconds())
		if filler := *pupils - len(f.Pupils); filler > 0 {
			start = time.Now()
			counts, err := bench.Fill(ctx, a.store, bench.Size{Pupils: filler, Releases: *releases, ExpiredTokens: *expired})
			if err != nil {
				return err
			}
			total := 0
			for _, n := range counts {
				total += n
			}
			fmt.Fprintf(out, "filler: %d pupils, %d releases, %d expired tokens: %d rows in one transaction in %.1fs\n",
				filler, *releases, *expired, total, time.Since(start).Seconds())
		}
		return nil
	})
}

// listFlag is a repeatable flag whose values may also be separated by
// commas; the first use replaces the default.
type listFlag struct {
	vals []string
	set  bool
}

func (l *listFlag) String() string { return strings.Join(l.vals, ",") }

func (l *listFlag) Set(v string) error {
	if !l.set {
		l.vals, l.set = nil, true
	}
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			l.vals = append(l.vals, part)
		}
	}
	return nil
}
