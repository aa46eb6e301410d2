package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// PostgresSchema gives t a schema of its own in the ELEVID_TEST_POSTGRES
// database (or skips t, see Postgres) and returns a DSN whose search_path
// is that schema, so tests run in parallel and leave nothing behind: the
// schema is dropped when t ends. prefix starts the schema's name.
func PostgresSchema(t testing.TB, prefix string) string {
	t.Helper()
	dsn := Postgres(t)
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		t.Fatalf("ELEVID_TEST_POSTGRES must be a postgres:// URL, got %q: %v", dsn, err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	schema := prefix + "_" + hex.EncodeToString(b)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("ELEVID_TEST_POSTGRES: %v", err)
	}
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		admin.Close(ctx)
		t.Fatalf("ELEVID_TEST_POSTGRES: create schema: %v", err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		admin.Close(context.Background())
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
