package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/school/storetest"
)

func newHarness(t *testing.T, clock *storetest.Clock) storetest.Harness {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return storetest.Harness{
		Store: st,
		Clock: clock,
		Exec: func(ctx context.Context, q string, args ...any) error {
			_, err := st.DB().ExecContext(ctx, q, args...)
			return err
		},
	}
}

func TestConformance(t *testing.T) {
	storetest.Run(t, newHarness)
}

func TestMigrateTwice(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "elevid.db")
	for range 2 {
		st, err := sqlite.Open(ctx, path, sqlstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := st.Migrate(ctx)
		if err != nil || v < 1 {
			t.Fatalf("Migrate = %d, %v", v, err)
		}
		st.Close()
	}
}

func TestOpenRejectsOptions(t *testing.T) {
	if _, err := sqlite.Open(context.Background(), "x.db?_pragma=foo", sqlstore.Options{}); err == nil {
		t.Fatal("options in the path were accepted")
	}
}
