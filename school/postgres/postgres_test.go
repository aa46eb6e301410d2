package postgres_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/school/storetest"
)

// newHarness gives each test its own schema in the ELEVID_TEST_POSTGRES
// database, so tests run in parallel and leave nothing behind.
func newHarness(t *testing.T, clock *storetest.Clock) storetest.Harness {
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	schema := "t_" + school.NewID()[:12]
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatalf("ELEVID_TEST_POSTGRES: %v", err)
	}
	if _, err := admin.Exec(ctx, `CREATE SCHEMA `+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), `DROP SCHEMA `+schema+` CASCADE`)
		admin.Close(context.Background())
	})
	keys := storetest.NewAuditKeyring()
	st, err := postgres.Open(ctx, withSearchPath(t, dsn, schema), sqlstore.Options{Now: clock.Now, AuditKeys: keys.Keys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return storetest.Harness{
		Store:     st,
		Clock:     clock,
		AuditKeys: keys,
		Exec: func(ctx context.Context, q string, args ...any) error {
			_, err := st.Pool().Exec(ctx, q, args...)
			return err
		},
	}
}

func withSearchPath(t *testing.T, dsn, schema string) string {
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") {
		t.Fatalf("ELEVID_TEST_POSTGRES must be a postgres:// URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newHarness)
}
