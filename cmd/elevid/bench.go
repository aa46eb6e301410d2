package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/elevid/elevid/idp/oidcbench"
)

const benchUsage = `Usage:
  elevid bench prepare [--pupils N] [--fixture FILE]
      create a bench school of N enrolled, consented pupils with virtual
      passkeys and a bench platform in the configured database
  elevid bench login [--url URL] [--concurrency C] [--duration D] [--fixture FILE]
                     [--metrics-url URL] [--metrics-token TOKEN]
      drive C virtual pupils through passkey login → authorize → code →
      token → userinfo against a running server; prints flows/s and p50/p95/p99,
      and the server's database work read from its metrics listener
      (default http://server.metrics_listen/metrics, token server.metrics_token)
`

// cmdBench runs `elevid bench`.
func cmdBench(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer, args []string) error {
	if len(args) == 0 || (args[0] != "prepare" && args[0] != "login") {
		fmt.Fprint(out, benchUsage)
		return errors.New("bench: give prepare or login")
	}
	fs := flag.NewFlagSet("bench "+args[0], flag.ContinueOnError)
	fixture := fs.String("fixture", oidcbench.DefaultFixture, "fixture file (pupils, passkeys, platform secret)")
	pupils := fs.Int("pupils", 64, "pupils to prepare")
	url := fs.String("url", cfg.Issuer, "base URL of the running server")
	conc := fs.Int("concurrency", 32, "concurrent virtual pupils")
	dur := fs.Duration("duration", 20*time.Second, "how long to run")
	defMetrics := ""
	if cfg.Server.MetricsListen != "" {
		defMetrics = "http://" + cfg.Server.MetricsListen + "/metrics"
	}
	metricsURL := fs.String("metrics-url", defMetrics, "the server's /metrics on its metrics listener (empty: do not read)")
	metricsToken := fs.String("metrics-token", cfg.Server.MetricsToken, "bearer token for --metrics-url")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "login" {
		f, err := oidcbench.ReadFixture(*fixture)
		if err != nil {
			return err
		}
		res, err := oidcbench.Run(ctx, oidcbench.Config{BaseURL: *url, Fixture: f, Concurrency: *conc, Duration: *dur,
			MetricsURL: *metricsURL, MetricsToken: *metricsToken})
		if err != nil {
			return err
		}
		res.Print(out)
		return nil
	}
	return withApp(ctx, cfg, log, func(a *app) error {
		f, err := oidcbench.Prepare(ctx, a.store, cfg.WebAuthn.RPID, cfg.WebAuthn.Origins[0], *pupils)
		if err != nil {
			return err
		}
		if err := oidcbench.WriteFixture(*fixture, f); err != nil {
			return err
		}
		fmt.Fprintf(out, "prepared %d pupils; fixture written to %s\n", len(f.Pupils), *fixture)
		return nil
	})
}
