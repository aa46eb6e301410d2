package rostersync_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/rostersync"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// The child half of TestKilledSyncIsTakenOver: when ELEVID_SYNC_CHILD is
// set, sync the school and, once inside the applying transaction (the
// quarantine hook), say so and hang until killed.
func TestMain(m *testing.M) {
	if spec := os.Getenv("ELEVID_SYNC_CHILD"); spec != "" {
		os.Exit(syncChild(spec, os.Getenv("ELEVID_SYNC_SCHOOL")))
	}
	if spec := os.Getenv("ELEVID_BENCH_CHILD"); spec != "" {
		os.Exit(benchChild(spec))
	}
	os.Exit(m.Run())
}

func syncChild(spec, schoolID string) int {
	ctx := context.Background()
	var st school.Store
	var err error
	if strings.HasPrefix(spec, "postgres://") {
		st, err = postgres.Open(ctx, spec, sqlstore.Options{})
	} else {
		st, err = sqlite.Open(ctx, spec, sqlstore.Options{})
	}
	if err != nil {
		os.Stderr.WriteString("child: " + err.Error() + "\n")
		return 2
	}
	sealer, _ := school.NewSealer([]byte("0123456789abcdef0123456789abcdef"))
	s := rostersync.New(rostersync.Options{Store: st, Sealer: sealer, Log: quietLog(), Owner: "child",
		OnQuarantine: func(ctx context.Context, q school.Queries, id string) error {
			os.Stdout.WriteString("in-apply\n")
			time.Sleep(time.Hour)
			return nil
		}})
	_, err = s.Run(ctx, schoolID, rostersync.RunOptions{})
	os.Stderr.WriteString("child: run returned: " + errString(err) + "\n")
	return 3
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

// A sync killed with SIGKILL in the middle of applying blocks its school
// for at most the lock's lease (20 s, under the 30 s asked): a new run then succeeds, nothing
// of the killed run was applied, and the killed run reads "interrupted".
func TestKilledSyncIsTakenOver(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			clock := &testClock{real: true}
			var st school.Store
			var spec string
			if backend == "sqlite" {
				spec = filepath.Join(t.TempDir(), "elevid.db")
				lite, err := sqlite.Open(context.Background(), spec, sqlstore.Options{Now: clock.Now})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { lite.Close() })
				if _, err := lite.Migrate(context.Background()); err != nil {
					t.Fatal(err)
				}
				st = lite
			} else {
				st, spec = openPostgresDSN(t, clock)
			}
			killedSync(t, st, spec, clock)
		})
	}
}

func killedSync(t *testing.T, st school.Store, spec string, clock *testClock) {
	e := newEnv(t, small, st, clock)
	e.mustRun(rostersync.RunOptions{})
	e.dir.remove(pupilDN(1)) // the next run quarantines pupil 1: the hook runs
	before := e.snapshot()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "ELEVID_SYNC_CHILD="+spec, "ELEVID_SYNC_SCHOOL="+e.sch.ID)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if strings.TrimSpace(l) != "in-apply" {
			t.Fatalf("child said %q", l)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("child did not reach the apply phase")
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed := time.Now()

	// Right after the kill the school is still locked by the dead run.
	if _, err := e.run(rostersync.RunOptions{}); !errors.Is(err, rostersync.ErrBusy) {
		t.Fatalf("run right after the kill: %v, want ErrBusy (the dead run's lease)", err)
	}
	if after := e.snapshot(); after != before {
		t.Fatal("the killed run's transaction was applied in part")
	}
	var res rostersync.Result
	for {
		res, err = e.run(rostersync.RunOptions{})
		if err == nil {
			break
		}
		if !errors.Is(err, rostersync.ErrBusy) {
			t.Fatalf("run after the kill: %v", err)
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("school still locked %s after the kill", time.Since(killed).Round(time.Second))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("taken over %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	if res.Run.Counts["pupil.quarantine"] != 1 || e.pupil(1).Status != school.PupilQuarantined {
		t.Fatalf("new run = %+v", res.Run)
	}
	runs, err := e.st.ListSyncRuns(e.ctx, e.sch.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 3 {
		t.Fatalf("%d runs recorded, want 3 (first, killed, new)", len(runs))
	}
	old := runs[1]
	if old.Status != school.SyncInterrupted || old.EndedAt.IsZero() || old.EndedAt.Before(killed) || old.EndedAt.After(res.Run.EndedAt) {
		t.Fatalf("killed run reads %s ended %s (killed %s)", old.Status, old.EndedAt, killed)
	}
}
