package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/elevid/elevid/internal/bench"
	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// loginLoad runs pupils' logins (4 at a time) against base in rounds of
// 300 ms, each letting its flows finish, until stop is called; stop
// returns the totals.
func loginLoad(ctx context.Context, base string, f *bench.Fixture) (stop func() bench.Result) {
	var done atomic.Bool
	results := make(chan bench.Result, 1)
	go func() {
		var all bench.Result
		for !done.Load() {
			r, err := bench.Run(ctx, bench.Config{BaseURL: base, Fixture: f, Concurrency: 4, Duration: 300 * time.Millisecond})
			if err != nil {
				r.FirstError, r.Errors = err.Error(), 1
			}
			all.Flows, all.Errors, all.Elapsed = all.Flows+r.Flows, all.Errors+r.Errors, all.Elapsed+r.Elapsed
			if all.FirstError == "" {
				all.FirstError = r.FirstError
			}
		}
		results <- all
	}()
	return func() bench.Result {
		done.Store(true)
		return <-results
	}
}

// cli runs one elevid command line with the configuration file cfgFile.
func cli(t *testing.T, cfgFile string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := run(context.Background(), append([]string{args[0], "--config", cfgFile}, args[1:]...), &out, &out, noEnv)
	return out.String(), err
}

// TestBackupUnderLoginLoadAndRestore backs up a serving SQLite instance
// while pupils sign in (passkey → authorize → token → userinfo, each
// flow writing sessions, tokens and a release), restores the backup into
// a new instance and checks pupils, passkeys, consents and the audit
// chains there; then the same pupils sign in with the same passkeys
// against the restored instance.
func TestBackupUnderLoginLoadAndRestore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	base := fmt.Sprintf("http://localhost:%d", port)
	live, restored := filepath.Join(dir, "live.db"), filepath.Join(dir, "restored", "elevid.db")
	conf := func(db string) string {
		return fmt.Sprintf("listen: 127.0.0.1:%d\nissuer: %s\ndatabase: %s\nlog: {level: warn}\nserver: {metrics_listen: \"\"}\n", port, base, db)
	}
	liveCfg, restoredCfg := writeConfig(t, conf(live)), writeConfig(t, conf(restored))
	for _, args := range [][]string{
		{"admin", "create-school", "--code", "s1", "--name", "Skole 1", "--domain", "s1.example"},
		{"admin", "create-school", "--code", "s2", "--name", "Skole 2", "--domain", "s2.example"},
		{"bench", "prepare", "--pupils", "12", "--fixture", filepath.Join(dir, "bench.json")},
	} {
		if out, err := cli(t, liveCfg, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	fixture, err := bench.ReadFixture(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	ready := func() error {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	_, stopLive := startServe(t, conf(live), ready)

	// Login load until the backup is done; the backup starts a second
	// into it.
	var loadDone atomic.Bool
	stopLoad := loginLoad(ctx, base, fixture)
	// Meanwhile staff work appends to the schools' audit chains (through
	// a store of its own, as a second node would).
	auditor, err := sqlite.Open(ctx, live, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer auditor.Close()
	schoolsLive, err := auditor.ListSchools(ctx)
	if err != nil {
		t.Fatal(err)
	}
	audited := make(chan error, 1)
	go func() {
		for i := 0; !loadDone.Load(); i++ {
			sch := schoolsLive[i%len(schoolsLive)]
			if _, err := auditor.AppendAudit(ctx, school.AuditEntry{SchoolID: sch.ID, ActorID: "system", ActorRole: "operator",
				Action: "test.backup-load", Detail: fmt.Sprint(i)}); err != nil {
				audited <- err
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		audited <- nil
	}()
	liveDB := openReadOnly(t, live)
	time.Sleep(time.Second)
	backup := filepath.Join(dir, "backup", "elevid-backup.db")
	if err := os.MkdirAll(filepath.Dir(backup), 0o700); err != nil {
		t.Fatal(err)
	}
	// A backup takes tens of milliseconds: on a busy machine no flow may
	// finish meanwhile, so it is taken again (up to five times) until
	// sign-ins and staff work both wrote while it ran; that backup is
	// the one checked.
	var out string
	var releasesBefore, auditBefore, releasesAfter, auditAfter int
	for attempt := 1; ; attempt++ {
		releasesBefore, auditBefore = count(t, liveDB, "releases"), count(t, liveDB, "audit_log")
		os.Remove(backup)
		if out, err = cli(t, liveCfg, "admin", "backup", "--to", backup); err != nil {
			t.Fatalf("backup: %v\n%s", err, out)
		}
		releasesAfter, auditAfter = count(t, liveDB, "releases"), count(t, liveDB, "audit_log")
		if releasesAfter > releasesBefore && auditAfter > auditBefore {
			break
		}
		if attempt == 5 {
			t.Fatalf("no backup of five ran under load: releases %d → %d, audit entries %d → %d in the last",
				releasesBefore, releasesAfter, auditBefore, auditAfter)
		}
	}
	t.Logf("backup under load: %s(releases written meanwhile: %d)", out[:strings.Index(out, "\n")+1], releasesAfter-releasesBefore)
	for _, want := range []string{"backup written to", "secrets.encryption_keys", "kept in the database, so this backup holds it"} {
		if !strings.Contains(out, want) {
			t.Errorf("backup output lacks %q:\n%s", want, out)
		}
	}
	if fi, err := os.Stat(backup); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("backup file: %v %v", fi, err)
	}
	if out, err := cli(t, liveCfg, "admin", "backup", "--to", backup); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("backup over an existing file: %v\n%s", err, out)
	}
	time.Sleep(300 * time.Millisecond) // logins go on after the backup, too
	loadDone.Store(true)
	if err := <-audited; err != nil {
		t.Fatalf("audit during the load: %v", err)
	}
	r := stopLoad()
	if r.Flows == 0 || r.Errors != 0 {
		t.Fatalf("login load: %d flows, %d errors (%s)", r.Flows, r.Errors, r.FirstError)
	}
	t.Logf("login load: %d flows in %s", r.Flows, r.Elapsed.Round(time.Millisecond))
	stopLive()
	releasesLive := count(t, liveDB, "releases")

	// Restore into a new instance.
	out, err = cli(t, restoredCfg, "admin", "restore", "--from", backup)
	if err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	if !strings.Contains(out, "audit chains intact: 4") {
		t.Errorf("restore output:\n%s", out)
	}
	restoredDB := openReadOnly(t, restored)
	// Logins change neither pupils, passkeys nor consents: the restored
	// ones equal the live ones, row by row.
	for _, q := range []string{
		"SELECT id, school_id, given_name, family_name, status FROM pupils ORDER BY id",
		"SELECT id, pupil_id, public_key, revoked_at IS NULL FROM credentials ORDER BY id",
		"SELECT * FROM consents ORDER BY 1",
		"SELECT id, code, name FROM schools ORDER BY id",
	} {
		a, b := dump(t, liveDB, q), dump(t, restoredDB, q)
		if a != b || strings.Count(a, "\n") == 0 {
			t.Errorf("%s\nlive:\n%s\nrestored:\n%s", q, a, b)
		}
	}
	if n := count(t, restoredDB, "consents"); n < 12 {
		t.Errorf("restored consents: %d", n)
	}
	// The backup is one snapshot taken while logins went on: everything
	// written before it started, not what came after it ended.
	if n := count(t, restoredDB, "releases"); n < releasesBefore || n > releasesAfter || releasesLive <= releasesAfter {
		t.Errorf("releases: restored %d, live %d before / %d after the backup, %d at the end", n, releasesBefore, releasesAfter, releasesLive)
	}
	st, err := sqlite.Open(ctx, restored, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	schools, err := st.ListSchools(ctx)
	if err != nil || len(schools) != 3 {
		t.Fatalf("restored schools: %v %v", schools, err)
	}
	// The chains are keyed (issue 15): verify them with the instance's
	// audit keys, as `elevid admin audit verify` does.
	for _, s := range append([]school.School{{Code: "instance"}}, schools...) {
		if out, err := cli(t, restoredCfg, "admin", "audit", "verify", "--school", s.Code); err != nil {
			t.Errorf("audit chain %q: %v %s", s.Code, err, out)
		}
	}
	if n := count(t, restoredDB, "audit_log"); n < auditBefore || n > auditAfter || auditAfter <= auditBefore {
		t.Errorf("audit entries: restored %d, live %d before / %d after the backup", n, auditBefore, auditAfter)
	}
	st.Close()

	// A second restore finds the instance in use and refuses.
	if out, err := cli(t, restoredCfg, "admin", "restore", "--from", backup); err == nil || !strings.Contains(err.Error(), "is not empty") {
		t.Errorf("restore into a non-empty instance: %v\n%s", err, out)
	}

	// The same pupils sign in with the same passkeys on the restored one.
	startServe(t, conf(restored), ready)
	r, err = bench.Run(ctx, bench.Config{BaseURL: base, Fixture: fixture, Concurrency: 2, Duration: time.Second})
	if err != nil || r.Flows == 0 || r.Errors != 0 {
		t.Fatalf("logins on the restored instance: %d flows, %d errors (%s) %v", r.Flows, r.Errors, r.FirstError, err)
	}
}

func TestRestoreRefusesOtherSecrets(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	liveCfg := writeConfig(t, "database: "+live+"\nlog: {level: warn}\n")
	if out, err := cli(t, liveCfg, "admin", "create-school", "--code", "s1", "--name", "S", "--domain", "s.example"); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	backup := filepath.Join(dir, "b.db")
	if out, err := cli(t, liveCfg, "admin", "backup", "--to", backup); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	// The backup holds generated secrets; a configuration with its own
	// encryption key could not open what they sealed.
	target := filepath.Join(dir, "new.db")
	other := writeConfig(t, "database: "+target+"\nlog: {level: warn}\nsecrets: {encryption_keys: ["+key32+"]}\n")
	out, err := cli(t, other, "admin", "restore", "--from", backup)
	if err == nil || !strings.Contains(err.Error(), "secrets.encryption_keys") {
		t.Fatalf("restore with another encryption key: %v\n%s", err, out)
	}
	if _, err := os.Stat(target); err == nil {
		t.Error("a refused restore wrote the database")
	}
	// Not a database at all.
	junk := filepath.Join(dir, "junk.db")
	os.WriteFile(junk, []byte("not sqlite"), 0o600)
	if _, err := cli(t, writeConfig(t, "database: "+target+"\n"), "admin", "restore", "--from", junk); err == nil {
		t.Error("restored junk")
	}
}

func TestPostgresBackupPrintsPgDump(t *testing.T) {
	cfg := writeConfig(t, "database: postgres://elevid:pw@db.example:5432/elevid\n")
	out, err := cli(t, cfg, "admin", "backup", "--to", "/backup/elevid.dump")
	if err == nil || !strings.Contains(out, "pg_dump --format=custom --no-owner --file /backup/elevid.dump 'postgres://elevid:xxxxx@db.example:5432/elevid'") ||
		strings.Contains(out, "pw@") || !strings.Contains(out, "secrets.pairwise_secret") {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = cli(t, cfg, "admin", "restore", "--from", "/backup/elevid.dump")
	if err == nil || !strings.Contains(out, "pg_restore --no-owner --exit-on-error --dbname") {
		t.Fatalf("%v\n%s", err, out)
	}
}

func openReadOnly(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// dump renders every row of q, one per line.
func dump(t *testing.T, db *sql.DB, q string) string {
	t.Helper()
	rows, err := db.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%v\n", vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestPostgresBackupWithPgDump runs the pg_dump and pg_restore commands
// that `elevid admin backup|restore` print against scratch databases
// (created beside ELEVID_TEST_POSTGRES's) and checks the restored
// instance: pupils, passkeys, consents, audit chains, and a pupil
// signing in with the same passkey.
func TestPostgresBackupWithPgDump(t *testing.T) {
	dsn := testenv.Postgres(t)
	pgDump := testenv.Binary(t, "postgresql-client", "pg_dump")
	pgRestore := testenv.Binary(t, "postgresql-client", "pg_restore")
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	scratch := func(name string) string {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
		u, _ := url.Parse(dsn)
		u.Path = "/" + name
		return u.String()
	}
	suffix := strings.ToLower(school.NewID()[:10])
	srcDSN, dstDSN := scratch("elevid_bk_src_"+suffix), scratch("elevid_bk_dst_"+suffix)
	dir := t.TempDir()
	port := freePorts(t, 1)[0]
	base := fmt.Sprintf("http://localhost:%d", port)
	conf := func(db string) string {
		return fmt.Sprintf("listen: 127.0.0.1:%d\nissuer: %s\ndatabase: %q\nlog: {level: warn}\nserver: {metrics_listen: \"\"}\n", port, base, db)
	}
	srcCfg, dstCfg := writeConfig(t, conf(srcDSN)), writeConfig(t, conf(dstDSN))
	for _, args := range [][]string{
		{"admin", "create-school", "--code", "s1", "--name", "Skole 1", "--domain", "s1.example"},
		{"bench", "prepare", "--pupils", "4", "--fixture", filepath.Join(dir, "bench.json")},
	} {
		if out, err := cli(t, srcCfg, args...); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	fixture, err := bench.ReadFixture(filepath.Join(dir, "bench.json"))
	if err != nil {
		t.Fatal(err)
	}
	ready := func() error {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	// The printed command, run as printed (with the real DSN) while the
	// source serves pupils' logins.
	out, _ := cli(t, srcCfg, "admin", "backup", "--to", filepath.Join(dir, "elevid.dump"))
	if !strings.Contains(out, "pg_dump --format=custom --no-owner --file "+filepath.Join(dir, "elevid.dump")) {
		t.Fatalf("backup help:\n%s", out)
	}
	_, stopSrc := startServe(t, conf(srcDSN), ready)
	stopLoad := loginLoad(ctx, base, fixture)
	time.Sleep(500 * time.Millisecond)
	if b, err := exec.Command(pgDump, "--format=custom", "--no-owner", "--file", filepath.Join(dir, "elevid.dump"), srcDSN).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, b)
	}
	if r := stopLoad(); r.Flows == 0 || r.Errors != 0 {
		t.Fatalf("logins during pg_dump: %d flows, %d errors (%s)", r.Flows, r.Errors, r.FirstError)
	}
	stopSrc()
	if b, err := exec.Command(pgRestore, "--no-owner", "--exit-on-error", "--dbname", dstDSN, filepath.Join(dir, "elevid.dump")).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, b)
	}
	if out, err := cli(t, dstCfg, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	rows := func(db, q string) string {
		c, err := pgx.Connect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var s string
		if err := c.QueryRow(ctx, "SELECT COALESCE(string_agg(x::text, E'\\n' ORDER BY x::text), '') FROM ("+q+") x").Scan(&s); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return s
	}
	for _, q := range []string{
		"SELECT id, school_id, given_name, status FROM pupils",
		"SELECT id, pupil_id, public_key FROM credentials",
		"SELECT * FROM consents",
		"SELECT school_id, seq, hash FROM audit_log",
	} {
		if a, b := rows(srcDSN, q), rows(dstDSN, q); a != b || a == "" {
			t.Errorf("%s\nsource:\n%s\nrestored:\n%s", q, a, b)
		}
	}
	for _, chain := range []string{"s1", "bench", "instance"} {
		if out, err := cli(t, dstCfg, "admin", "audit", "verify", "--school", chain); err != nil || !strings.Contains(out, "intact") {
			t.Errorf("audit verify %s: %v %s", chain, err, out)
		}
	}
	startServe(t, conf(dstDSN), ready)
	r, err := bench.Run(ctx, bench.Config{BaseURL: base, Fixture: fixture, Concurrency: 2, Duration: time.Second})
	if err != nil || r.Flows == 0 || r.Errors != 0 {
		t.Fatalf("logins on the restored database: %d flows, %d errors (%s) %v", r.Flows, r.Errors, r.FirstError, err)
	}
}
