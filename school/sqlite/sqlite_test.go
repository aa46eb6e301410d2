package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/school/storetest"
)

func newHarness(t *testing.T, clock *storetest.Clock) storetest.Harness {
	ctx := context.Background()
	keys := storetest.NewAuditKeyring()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{Now: clock.Now, AuditKeys: keys.Keys})
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

// More concurrent transactions than connections, each running statements
// the store has not prepared yet, all finish promptly: preparing a
// statement never waits for a second connection inside a transaction
// (which deadlocked until the busy timeout).
func TestConcurrentTransactionsDoNotStarveThePool(t *testing.T) {
	h := newHarness(t, storetest.NewClock())
	// A school made behind the store's back, so that no statement the
	// transactions below run is prepared yet.
	if err := h.Exec(context.Background(), `INSERT INTO schools (id, code, name, domain, created_at) VALUES ('s1', 's1', 'S', 's.example.dk', 1)`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			errs <- h.Store.InTx(ctx, func(q school.Queries) error {
				c, err := q.CreateClass(ctx, school.Class{SchoolID: "s1", Name: fmt.Sprintf("K%d", i)})
				if err != nil {
					return err
				}
				if _, err := q.GetClass(ctx, "s1", c.ID); err != nil {
					return err
				}
				_, err = q.ListClasses(ctx, "s1")
				return err
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("transaction failed under pool pressure: %v", err)
		}
	}
}

// TestWritersQueueInProcess: a write outside a transaction waits for the
// open transaction (on the in-process writer queue, not SQLite's busy
// handler), goes through once it commits, and gives up with the caller's
// context.
func TestWritersQueueInProcess(t *testing.T) {
	h := newHarness(t, storetest.NewClock())
	ctx := context.Background()
	sch, err := h.Store.CreateSchool(ctx, school.School{Code: "queue", Name: "Q", Domain: "q.example.dk"})
	if err != nil {
		t.Fatal(err)
	}
	inTx, release := make(chan struct{}), make(chan struct{})
	txDone := make(chan error, 1)
	go func() {
		txDone <- h.Store.InTx(ctx, func(q school.Queries) error {
			if _, err := q.CreateClass(ctx, school.Class{SchoolID: sch.ID, Name: "1A"}); err != nil {
				return err
			}
			close(inTx)
			<-release
			return nil
		})
	}()
	<-inTx

	// A writer whose context ends while it waits gets the context's error.
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := h.Store.CreateClass(short, school.Class{SchoolID: sch.ID, Name: "1B"}); err == nil {
		t.Fatal("a write went through while another transaction held the writer lock")
	}

	// A patient writer waits and succeeds after the commit.
	wrote := make(chan error, 1)
	go func() {
		_, err := h.Store.CreateClass(ctx, school.Class{SchoolID: sch.ID, Name: "1C"})
		wrote <- err
	}()
	select {
	case err := <-wrote:
		t.Fatalf("write finished before the open transaction committed: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-txDone; err != nil {
		t.Fatal(err)
	}
	if err := <-wrote; err != nil {
		t.Fatalf("queued write failed: %v", err)
	}
	classes, err := h.Store.ListClasses(ctx, sch.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(classes) != 2 {
		t.Fatalf("want 1A and 1C, got %+v", classes)
	}
}
