package main

import (
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/web"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const usage = `ElevID – identity provider for pupils aged 12–15.

Usage:
  elevid serve   [--config FILE] [--demo]   run the web service (migrates first)
  elevid migrate [--config FILE]            apply database migrations
  elevid sync    [--config FILE] …          sync a school's roster from LDAP
  elevid admin   [--config FILE] …          administration (schools, staff, platforms, audit)

The configuration file is YAML (see README.md); without one, ElevID starts
locally on http://localhost:8080 with the SQLite file elevid.db.
ELEVID_CONFIG names the file when --config is not given.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "elevid:", err)
		}
		os.Exit(1)
	}
}

// run executes one command line; main is a thin shell around it so that
// tests can run commands in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return nil
	}
	cmd, rest := args[0], args[1:]
	fs := flag.NewFlagSet("elevid "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("ELEVID_CONFIG"), "configuration file (YAML)")
	demo := false
	if cmd == "serve" {
		fs.BoolVar(&demo, "demo", false, "seed a demo school (idempotent) and mark every page as demo")
	}
	switch cmd {
	case "serve", "migrate":
		if err := fs.Parse(rest); err != nil {
			return err
		}
		rest = fs.Args()
	case "sync", "admin", "bench":
		// Subcommands parse their own flags; --config may come first.
		if len(rest) >= 2 && (rest[0] == "--config" || rest[0] == "-config") {
			*configPath, rest = rest[1], rest[2:]
		}
	default:
		return fmt.Errorf("unknown command %q\n\n%s", cmd, usage)
	}
	cfg, err := LoadConfig(*configPath, getenv)
	if err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := newLogger(cfg.Log, stderr)
	// Libraries that log through the default logger (zitadel's OIDC
	// provider) log through ours.
	slog.SetDefault(log)
	switch cmd {
	case "serve":
		return serve(ctx, cfg, log, demo, stdout)
	case "migrate":
		a, v, err := openMigrated(ctx, cfg, log)
		if err != nil {
			return err
		}
		defer a.Close()
		fmt.Fprintf(stdout, "database at schema version %d\n", v)
		return nil
	case "sync":
		return withApp(ctx, cfg, log, func(a *app) error { return cmdSync(ctx, a, stdout, rest) })
	case "admin":
		if len(rest) > 0 && (rest[0] == "backup" || rest[0] == "restore") {
			return cmdBackupRestore(ctx, cfg, log, stdout, rest)
		}
		return withApp(ctx, cfg, log, func(a *app) error { return cmdAdmin(ctx, a, stdout, rest) })
	case "bench":
		return cmdBench(ctx, cfg, log, stdout, rest)
	}
	return nil
}

func newLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// app is an opened store with the instance's secrets: what every command
// needs.
type app struct {
	cfg      Config
	log      *slog.Logger
	store    school.Store
	migrate  func(context.Context) (int64, error)
	metrics  *web.Metrics
	registry *prometheus.Registry

	sealer      *school.Sealer
	sessionKeys [][]byte
	pairwise    []byte
	// auditKeys key the audit chain: derived from the encryption keys
	// (the first keys new entries); set by loadSecrets.
	auditKeys school.AuditKeys
}

// auditPurpose names the audit chain's key derived from each encryption
// key.
const auditPurpose = "audit-chain"

// openApp opens the database named by cfg without migrating it.
func openApp(ctx context.Context, cfg Config, log *slog.Logger) (*app, error) {
	a := &app{cfg: cfg, log: log, registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.metrics = web.NewMetrics(a.registry)
	counter := &sqlstore.Counter{}
	registerStoreCounter(a.registry, counter)
	opt := sqlstore.Options{Counter: counter, OnError: func(op string, err error) {
		a.metrics.StoreError(op, err)
		log.Error("store error", "op", op, "err", err)
	}, AuditKeys: func() school.AuditKeys { return a.auditKeys }}
	if cfg.Postgres() {
		st, err := postgres.Open(ctx, cfg.Database, opt)
		if err != nil {
			return nil, err
		}
		a.store, a.migrate = st, st.Migrate
	} else {
		st, err := sqlite.Open(ctx, cfg.Database, opt)
		if err != nil {
			return nil, err
		}
		a.store, a.migrate = st, st.Migrate
	}
	return a, nil
}

// withApp opens and migrates the database, loads the secrets and runs fn.
func withApp(ctx context.Context, cfg Config, log *slog.Logger, fn func(*app) error) error {
	a, _, err := openMigrated(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	if err := a.loadSecrets(ctx); err != nil {
		return err
	}
	return fn(a)
}

func (a *app) Close() error { return a.store.Close() }

// openMigrated opens the app (openApp) and migrates its database; it
// returns the schema version. On an error nothing is left open; else the
// caller closes the app.
func openMigrated(ctx context.Context, cfg Config, log *slog.Logger) (*app, int64, error) {
	a, err := openApp(ctx, cfg, log)
	if err != nil {
		return nil, 0, err
	}
	v, err := a.migrate(ctx)
	if err != nil {
		a.Close()
		return nil, 0, err
	}
	return a, v, nil
}

// loadSecrets decodes the configured secrets. On a local (http) instance
// missing ones are generated once and kept in the database, so every node
// and every restart agrees; Validate already demanded them for https.
func (a *app) loadSecrets(ctx context.Context) error {
	get := func(name string, configured []string) ([][]byte, error) {
		if len(configured) > 0 {
			var out [][]byte
			for _, v := range configured {
				b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v))
				if err != nil {
					return nil, err
				}
				out = append(out, b)
			}
			return out, nil
		}
		v, err := a.store.EnsureSetting(ctx, "dev-secret:"+name, []byte(base64.StdEncoding.EncodeToString([]byte(school.NewID()+school.NewID()))))
		if err != nil {
			return nil, err
		}
		a.log.Warn("using a generated development secret kept in the database; configure it for production", "secret", name)
		b, err := base64.StdEncoding.DecodeString(string(v))
		return [][]byte{b}, err
	}
	var err error
	if a.sessionKeys, err = get("session_keys", a.cfg.Secrets.SessionKeys); err != nil {
		return fmt.Errorf("secrets.session_keys: %w", err)
	}
	enc, err := get("encryption_keys", a.cfg.Secrets.EncryptionKeys)
	if err != nil {
		return fmt.Errorf("secrets.encryption_keys: %w", err)
	}
	if a.sealer, err = school.NewSealer(enc...); err != nil {
		return fmt.Errorf("secrets.encryption_keys: %w", err)
	}
	a.auditKeys = nil
	for i := 0; ; i++ {
		k, id, ok := a.sealer.DerivedKey(i, auditPurpose)
		if !ok {
			break
		}
		a.auditKeys = append(a.auditKeys, school.AuditKey{ID: id, Key: k})
	}
	// Entries written before the chain was keyed are re-keyed once (after
	// checking them as they are).
	if n, err := a.store.RekeyAudit(ctx); err != nil {
		a.log.Error("audit chain: legacy entries not re-keyed", "err", err)
	} else if n > 0 {
		a.log.Warn("audit chain: legacy entries re-keyed; keep new anchors (elevid admin audit anchor)", "entries", n)
	}
	var pw []string
	if a.cfg.Secrets.PairwiseSecret != "" {
		pw = []string{a.cfg.Secrets.PairwiseSecret}
	}
	p, err := get("pairwise_secret", pw)
	if err != nil {
		return fmt.Errorf("secrets.pairwise_secret: %w", err)
	}
	a.pairwise = p[0]
	return nil
}

// registerStoreCounter exports the database work of the store: the load
// test (`elevid bench login`) reads them to report it per flow.
func registerStoreCounter(reg prometheus.Registerer, c *sqlstore.Counter) {
	count := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	reg.MustRegister(
		count("elevid_store_transactions_total", "Database transactions begun by the store.", &c.Transactions),
		count("elevid_store_statements_total", "Statements run outside a transaction (each its own).", &c.Statements),
		count("elevid_store_tx_statements_total", "Statements run inside transactions.", &c.InTx),
	)
}
