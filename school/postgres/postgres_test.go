package postgres_test

import (
	"context"
	"testing"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/school/storetest"
)

// newHarness gives each test its own schema in the ELEVID_TEST_POSTGRES
// database, so tests run in parallel and leave nothing behind.
func newHarness(t *testing.T, clock *storetest.Clock) storetest.Harness {
	ctx := context.Background()
	keys := storetest.NewAuditKeyring()
	st, err := postgres.Open(ctx, testenv.PostgresSchema(t, "t"), sqlstore.Options{Now: clock.Now, AuditKeys: keys.Keys})
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

func TestConformance(t *testing.T) {
	storetest.Run(t, newHarness)
}
