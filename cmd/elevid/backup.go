package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elevid/elevid/migrations"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// adminBackupUsage documents `elevid admin backup` and `restore`.
const adminBackupUsage = `Backups (see docs/deploy.md):
  backup --to FILE      online copy of the SQLite database (VACUUM INTO), consistent while serving;
                        PostgreSQL: prints the pg_dump command to use instead
  restore --from FILE   into an empty instance (no database file yet, or one without data);
                        PostgreSQL: prints the pg_restore command to use instead
`

// cmdBackupRestore runs `elevid admin backup|restore`. Unlike other admin
// commands it opens the database itself: a backup must not migrate or
// write the live database, and a restore starts from an empty one.
func cmdBackupRestore(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("admin "+args[0], flag.ContinueOnError)
	to := fs.String("to", "", "backup file to write (must not exist)")
	from := fs.String("from", "", "backup file to restore")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if args[0] == "backup" {
		if cfg.Postgres() {
			fmt.Fprint(out, postgresBackupHelp(cfg, *to))
			fmt.Fprint(out, secretsNote(cfg, nil))
			return errors.New("backup: ElevID does not copy a PostgreSQL database itself; run the pg_dump command above")
		}
		if *to == "" {
			return errors.New("backup: give --to FILE")
		}
		return backupSQLite(ctx, cfg, out, *to)
	}
	if cfg.Postgres() {
		fmt.Fprint(out, postgresRestoreHelp(cfg, *from))
		return errors.New("restore: ElevID does not restore a PostgreSQL database itself; run the pg_restore command above")
	}
	if *from == "" {
		return errors.New("restore: give --from FILE")
	}
	return restoreSQLite(ctx, cfg, log, out, *from)
}

// backupSQLite writes an online, transactionally consistent copy of the
// SQLite database to path with VACUUM INTO (one read transaction: writers
// go on while it runs), checks it and renames it into place.
func backupSQLite(ctx context.Context, cfg Config, out io.Writer, path string) error {
	if _, err := os.Stat(cfg.Database); err != nil {
		return fmt.Errorf("backup: database %s: %w", cfg.Database, unwrapPathError(err))
	}
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("backup: %s already exists; give a new file name", path)
	}
	st, err := sqlite.Open(ctx, cfg.Database, sqlstore.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	partial := path + ".partial"
	_ = os.Remove(partial) // left by an interrupted backup
	start := time.Now()
	if _, err := st.DB().ExecContext(ctx, "VACUUM INTO ?", partial); err != nil {
		_ = os.Remove(partial)
		return fmt.Errorf("backup: VACUUM INTO %s: %w", partial, err)
	}
	took := time.Since(start)
	if err := os.Chmod(partial, 0o600); err != nil {
		return err
	}
	info, err := inspectSQLite(ctx, partial)
	if err != nil {
		_ = os.Remove(partial)
		return fmt.Errorf("backup: the copy does not check out: %w", err)
	}
	if err := syncFile(partial); err != nil {
		return err
	}
	if err := os.Rename(partial, path); err != nil {
		return err
	}
	fi, _ := os.Stat(path)
	fmt.Fprintf(out, "backup written to %s in %s (%d bytes, schema version %d)\n  %s\n",
		path, took.Round(time.Millisecond), fi.Size(), info.version, info.summary())
	fmt.Fprint(out, secretsNote(cfg, info))
	return nil
}

// restoreSQLite copies the backup at from into place as the configured
// database, which must hold no data, migrates it to this binary's schema
// and checks every audit chain.
func restoreSQLite(ctx context.Context, cfg Config, log *slog.Logger, out io.Writer, from string) error {
	info, err := inspectSQLite(ctx, from)
	if err != nil {
		return fmt.Errorf("restore: %s: %w", from, err)
	}
	if latest := latestMigration(); info.version > latest {
		return fmt.Errorf("restore: the backup has schema version %d, newer than this ElevID's %d; restore with the ElevID that made it (or a newer one)", info.version, latest)
	}
	if err := secretsMatch(cfg, info); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	target := cfg.Database
	if err := requireEmpty(ctx, target); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return err
	}
	tmp := target + ".restoring"
	if err := copyFile(from, tmp); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	for _, f := range []string{target, target + "-wal", target + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			_ = os.Remove(tmp)
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Rename(tmp, target); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	a, v, err := openMigrated(ctx, cfg, log)
	if err != nil {
		return fmt.Errorf("restore: opening and migrating the restored database: %w", err)
	}
	defer a.Close()
	// The audit chains are keyed with keys derived from the secrets.
	if err := a.loadSecrets(ctx); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	schools, err := a.store.ListSchools(ctx)
	if err != nil {
		return err
	}
	chains := []string{school.InstanceChain}
	for _, s := range schools {
		chains = append(chains, s.ID)
	}
	for _, c := range chains {
		if err := a.store.VerifyAudit(ctx, c); err != nil {
			return fmt.Errorf("restore: audit chain %q: %w", c, err)
		}
	}
	fmt.Fprintf(out, "restored %s into %s (schema version %d → %d)\n  %s\n  audit chains intact: %d (every school and the instance)\n",
		from, target, info.version, v, info.summary(), len(chains))
	fmt.Fprint(out, secretsNote(cfg, info))
	return nil
}

// backupInfo is what inspectSQLite read from a backup file.
type backupInfo struct {
	version int64
	counts  map[string]int64 // rows of the tables in countedTables
	// devSecrets holds the generated secrets kept in the database of an
	// http instance (settings "dev-secret:NAME"), by NAME.
	devSecrets map[string][]byte
}

var countedTables = []string{"schools", "pupils", "credentials", "consents", "audit_log"}

func (b *backupInfo) summary() string {
	return fmt.Sprintf("%d schools, %d pupils, %d passkeys, %d consents, %d audit entries",
		b.counts["schools"], b.counts["pupils"], b.counts["credentials"], b.counts["consents"], b.counts["audit_log"])
}

// inspectSQLite opens path read-only, runs SQLite's integrity check and
// reads its schema version, row counts and generated secrets.
func inspectSQLite(ctx context.Context, path string) (*backupInfo, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, unwrapPathError(err)
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		return nil, fmt.Errorf("not an SQLite database: %w", err)
	}
	if check != "ok" {
		return nil, fmt.Errorf("integrity check: %s", check)
	}
	info := &backupInfo{counts: map[string]int64{}, devSecrets: map[string][]byte{}}
	if err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version_id), 0) FROM goose_db_version WHERE is_applied").Scan(&info.version); err != nil {
		return nil, fmt.Errorf("not an ElevID database (no schema version): %w", err)
	}
	for _, t := range countedTables {
		var n int64
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+t).Scan(&n); err != nil {
			return nil, fmt.Errorf("not an ElevID database: %w", err)
		}
		info.counts[t] = n
	}
	rows, err := db.QueryContext(ctx, "SELECT key, value FROM settings WHERE key LIKE 'dev-secret:%'")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var k string
		var v []byte
		if err := rows.Scan(&k, &v); err != nil {
			return nil, err
		}
		info.devSecrets[strings.TrimPrefix(k, "dev-secret:")] = v
	}
	return info, rows.Err()
}

// requireEmpty returns nil when path does not exist or holds no rows
// outside the schema bookkeeping; else an error naming the tables.
func requireEmpty(ctx context.Context, path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && fi.Size() == 0) {
		return nil
	}
	if err != nil {
		return unwrapPathError(err)
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: path}).EscapedPath()+"?mode=ro")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'goose_db_version' ORDER BY name")
	if err != nil {
		return fmt.Errorf("%s is not an empty SQLite database: %w", path, err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, n)
	}
	rows.Close()
	var full []string
	for _, t := range tables {
		var any bool
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM "`+t+`")`).Scan(&any); err != nil {
			return err
		}
		if any {
			full = append(full, t)
		}
	}
	if len(full) > 0 {
		return fmt.Errorf("the database %s is not empty (data in %s); restore only into a new instance: stop ElevID and move that file away first", path, strings.Join(full, ", "))
	}
	return nil
}

// secretsMatch refuses a restore whose sealed data could not be opened
// or whose pairwise identifiers would change: a secret must come either
// from the backup (generated on an http instance) or from the
// configuration, and not differently from both.
func secretsMatch(cfg Config, info *backupInfo) error {
	if info.counts["schools"] == 0 && len(info.devSecrets) == 0 {
		return nil // an instance with no data yet
	}
	var p []string
	for _, s := range []struct {
		name       string
		configured []string
	}{
		{"encryption_keys", cfg.Secrets.EncryptionKeys},
		{"pairwise_secret", nonEmpty(cfg.Secrets.PairwiseSecret)},
	} {
		dev, inBackup := info.devSecrets[s.name]
		switch {
		case len(s.configured) == 0 && !inBackup:
			p = append(p, fmt.Sprintf("secrets.%s: the backup does not hold it (its instance had it configured); configure the same value here", s.name))
		case len(s.configured) > 0 && inBackup && !slices.ContainsFunc(s.configured, func(v string) bool { return sameSecret(v, dev) }):
			p = append(p, fmt.Sprintf("secrets.%s: the backup's instance used a generated one (kept in the backup), but this configuration sets another; remove it here or set the backup's", s.name))
		}
	}
	if len(p) > 0 {
		return fmt.Errorf("the secrets do not fit this backup:\n  %s", strings.Join(p, "\n  "))
	}
	return nil
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func sameSecret(configured string, stored []byte) bool {
	a, err1 := base64.StdEncoding.DecodeString(strings.TrimSpace(configured))
	b, err2 := base64.StdEncoding.DecodeString(string(stored))
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// secretsNote says what must be kept with a backup. info is nil when the
// database was not read (PostgreSQL).
func secretsNote(cfg Config, info *backupInfo) string {
	var b strings.Builder
	b.WriteString("Keep with this backup, stored separately and as carefully:\n")
	line := func(name, why string, configured bool) {
		where := "in your configuration or environment (ELEVID_" + strings.ToUpper(name) + ")"
		if !configured {
			where = "NOT configured: generated and kept in the database, so this backup holds it (protect the backup like the secret)"
			if info != nil {
				if _, ok := info.devSecrets[name]; !ok {
					where = "NOT configured and not in this database: it will be generated at the next start"
				}
			}
		}
		fmt.Fprintf(&b, "  secrets.%s – %s; %s\n", name, why, where)
	}
	line("encryption_keys", "opens the sealed signing keys, directory passwords and TOTP secrets in the database; without it they are lost", len(cfg.Secrets.EncryptionKeys) > 0)
	line("pairwise_secret", "derives the identifiers platforms know pupils by; another one makes every pupil a stranger to every platform", cfg.Secrets.PairwiseSecret != "")
	line("session_keys", "signs cookies; without it everyone signs in again, nothing else is lost", len(cfg.Secrets.SessionKeys) > 0)
	b.WriteString("  and the configuration file itself (smtp.password, guardian_verification.client_secret, server.tls key files).\n")
	return b.String()
}

// postgresBackupHelp is the pg_dump command for cfg's database and what
// it covers.
func postgresBackupHelp(cfg Config, to string) string {
	if to == "" {
		to = "elevid-$(date +%F).dump"
	}
	return fmt.Sprintf(`PostgreSQL: back up with pg_dump, which takes a consistent snapshot while ElevID serves:

  pg_dump --format=custom --no-owner --file %s '%s'

It covers the whole database: schools, pupils, guardians, passkeys, consents,
the audit, release and access logs, platforms, the sealed signing keys,
sessions and queues. It does not cover the secrets (below) or the configuration.
Restore into a new, empty database with: elevid admin restore (prints the command).
`, shellQuote(to), redactDSN(cfg.Database))
}

func postgresRestoreHelp(cfg Config, from string) string {
	if from == "" {
		from = "elevid.dump"
	}
	return fmt.Sprintf(`PostgreSQL: restore a pg_dump backup into a new, empty database (createdb first), then migrate:

  pg_restore --no-owner --exit-on-error --dbname '%s' %s
  elevid migrate

Use the same secrets.* as the instance the backup came from.
`, redactDSN(cfg.Database), shellQuote(from))
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// latestMigration is the highest schema version this binary knows.
func latestMigration() int64 {
	var v int64
	entries, _ := fs.ReadDir(migrations.FS(migrations.SQLite), ".")
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		if n, err := strconv.ParseInt(num, 10, 64); ok && err == nil && n > v {
			v = n
		}
	}
	return v
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}
