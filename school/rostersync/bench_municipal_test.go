package rostersync_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/rostersync"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// municipality is the benchmark directory of issue 17: 50 schools of
// 2,000 pupils (1.1 guardians, a class per 25 pupils and 180 staff per
// school) in one OpenLDAP tree, ou=CODE per school.
func municipality() (schools int, r roster) {
	schools = 50
	if n, err := strconv.Atoi(os.Getenv("ELEVID_BENCH_SCHOOLS")); err == nil && n > 0 {
		schools = n
	}
	return schools, roster{preset: school.PresetOpenLDAP, pupils: 2000, guardians: 2200, classes: 80, staff: 180}
}

func schoolCode(k int) string { return fmt.Sprintf("skole%02d", k) }

func writeMunicipalLDIF(t testing.TB, path string, schools int, r roster) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	fmt.Fprintf(w, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: school\no: School\n\n", base)
	for k := range schools {
		code := schoolCode(k)
		fmt.Fprintf(w, "dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n", code, base, code)
		for _, ou := range []string{"pupils", "guardians", "classes", "staff"} {
			fmt.Fprintf(w, "dn: ou=%s,ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n", ou, code, base, ou)
		}
		for _, e := range municipalEntries(r, k, code, true, false) {
			writeEntry(w, e)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

// benchChild runs `sync --all` once in its own process (so that its peak
// RSS is its own) and prints the outcome as JSON.
func benchChild(spec string) int {
	ctx := context.Background()
	var st school.Store
	var err error
	// With ELEVID_BENCH_STATEMENTS=N the child counts the store's
	// statements and prints the N most frequent ones to stderr.
	counter := &sqlstore.Counter{}
	top, _ := strconv.Atoi(os.Getenv("ELEVID_BENCH_STATEMENTS"))
	if top > 0 {
		counter.Track()
	}
	if strings.HasPrefix(spec, "postgres://") {
		st, err = postgres.Open(ctx, spec, sqlstore.Options{Counter: counter})
	} else {
		st, err = sqlite.Open(ctx, spec, sqlstore.Options{Counter: counter})
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 2
	}
	defer st.Close()
	sealer, _ := school.NewSealer([]byte("0123456789abcdef0123456789abcdef"))
	conc, _ := strconv.Atoi(os.Getenv("ELEVID_BENCH_CONCURRENCY"))
	if p := os.Getenv("ELEVID_BENCH_CPUPROFILE"); p != "" {
		f, err := os.Create(p)
		if err == nil && pprof.StartCPUProfile(f) == nil {
			defer pprof.StopCPUProfile()
		}
	}
	args := []string{"--all"}
	if conc > 0 {
		args = append(args, "--concurrency", strconv.Itoa(conc))
	}
	start := time.Now()
	err = rostersync.Command(ctx, rostersync.Options{Store: st, Sealer: sealer, Log: quietLog()}, os.Stderr, args)
	wall := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 2
	}
	out := struct {
		Wall    float64
		Failed  []string
		Created int
		Changes int
		Entries int
	}{Wall: wall.Seconds()}
	srcs, err := st.ListDirectorySources(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		return 2
	}
	for _, src := range srcs {
		runs, err := st.ListSyncRuns(ctx, src.SchoolID, 1)
		if err != nil || len(runs) == 0 {
			out.Failed = append(out.Failed, src.SchoolID+": no run")
			continue
		}
		r := runs[0]
		if r.Status != school.SyncSucceeded {
			out.Failed = append(out.Failed, src.SchoolID+": "+string(r.Status)+" "+r.Error)
		}
		out.Created += r.Counts["pupil.create"]
		for _, n := range r.Counts {
			out.Changes += n
		}
		out.Entries += r.Entries
	}
	json.NewEncoder(os.Stdout).Encode(out)
	pprof.StopCPUProfile()
	if top > 0 {
		n := max(len(srcs), 1)
		stmts := counter.Statements.Load() + counter.InTx.Load()
		fmt.Fprintf(os.Stderr, "statements: %d (%d a school), transactions: %d (%d a school)\n",
			stmts, stmts/int64(n), counter.Transactions.Load(), counter.Transactions.Load()/int64(n))
		for _, q := range counter.Top(top) {
			fmt.Fprintf(os.Stderr, "%8d  %.160s\n", q.N, strings.Join(strings.Fields(q.Query), " "))
		}
	}
	return 0
}

// BenchmarkMunicipality is issue 17's benchmark: one directory (a real
// slapd loaded with slapadd) of 50 schools × 2,000 pupils, one source for
// all schools (ou={school}), and `sync --all` in a process of its own:
// the first run into an empty store and a no-change re-run, on SQLite and
// PostgreSQL, with the process's peak RSS, beside the raw paged read of
// every pupil. It runs only when ELEVID_BENCH_SLAPD is set:
//
//	ELEVID_BENCH_SLAPD=1 ELEVID_TEST_POSTGRES=postgres://… \
//	  go test ./school/rostersync -run '^$' -bench Municipality -benchtime 1x -timeout 30m
//
// ELEVID_BENCH_SLAPD_PORT picks slapd's port, ELEVID_BENCH_SCHOOLS the
// number of schools, ELEVID_BENCH_CONCURRENCY the schools synced at once,
// and ELEVID_BENCH_CPUPROFILE=path writes each run's CPU profile to
// path.BACKEND.RUN (e.g. path.sqlite.nochange).
func BenchmarkMunicipality(b *testing.B) {
	if os.Getenv("ELEVID_BENCH_SLAPD") == "" {
		b.Skip("ELEVID_BENCH_SLAPD is not set")
	}
	schools, r := municipality()
	port, _ := strconv.Atoi(os.Getenv("ELEVID_BENCH_SLAPD_PORT"))
	s := startSlapdWith(b, func(path string) { writeMunicipalLDIF(b, path, schools, r) }, port,
		fmt.Sprintf("%d schools × %d pupils", schools, r.pupils))

	b.Run("rawread", func(b *testing.B) {
		for range b.N {
			start := time.Now()
			n := rawPagedRead(b, s)
			b.ReportMetric(time.Since(start).Seconds(), "s/read")
			b.Logf("raw paged read of %d pupils (givenName, sn, schacDateOfBirth, seeAlso, entryUUID; 1,000 a page): %s", n, time.Since(start).Round(time.Millisecond))
		}
	})
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			clock := &testClock{real: true}
			var st school.Store
			var spec string
			if backend == "postgres" {
				st, spec = openPostgresDSN(b, clock)
			} else {
				spec = filepath.Join(b.TempDir(), "elevid.db")
				lite, err := sqlite.Open(context.Background(), spec, sqlstore.Options{})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { lite.Close() })
				if _, err := lite.Migrate(context.Background()); err != nil {
					b.Fatal(err)
				}
				st = lite
			}
			ctx := context.Background()
			for k := range schools {
				if _, err := st.CreateSchool(ctx, school.School{Code: schoolCode(k), Name: schoolCode(k), Domain: schoolCode(k) + ".test"}); err != nil {
					b.Fatal(err)
				}
			}
			pw := filepath.Join(b.TempDir(), "pw")
			os.WriteFile(pw, []byte(s.rootPW), 0o600)
			var out strings.Builder
			sealer := testSealer(b)
			err := rostersync.Command(ctx, rostersync.Options{Store: st, Sealer: sealer, Log: quietLog()}, &out, []string{"source", "set", "--all-schools",
				"--url", s.url, "--insecure", "--bind-dn", s.rootDN, "--password-file", pw, "--page-size", "1000",
				"--pupil-base", "ou=pupils,ou={school}," + base, "--guardian-base", "ou=guardians,ou={school}," + base,
				"--class-base", "ou=classes,ou={school}," + base, "--staff-base", "ou=staff,ou={school}," + base})
			if err != nil {
				b.Fatal(err)
			}
			// ELEVID_BENCH_NOCHANGE_RUNS=N repeats the no-change run N times
			// (one sub-benchmark each), for a spread on a noisy machine.
			runs := []string{"first", "nochange"}
			if n, _ := strconv.Atoi(os.Getenv("ELEVID_BENCH_NOCHANGE_RUNS")); n > 1 {
				for range n - 1 {
					runs = append(runs, "nochange")
				}
			}
			for _, run := range runs {
				b.Run(run, func(b *testing.B) {
					for range b.N {
						slapdCPU := s.cpu()
						cmd := exec.Command(os.Args[0], "-test.run=^$")
						cmd.Env = append(os.Environ(), "ELEVID_BENCH_CHILD="+spec)
						if prof := os.Getenv("ELEVID_BENCH_CPUPROFILE"); prof != "" {
							cmd.Env = append(cmd.Env, "ELEVID_BENCH_CPUPROFILE="+prof+"."+backend+"."+run)
						}
						cmd.Stderr = os.Stderr
						outb, err := cmd.Output()
						if err != nil {
							b.Fatalf("sync --all: %v", err)
						}
						var res struct {
							Wall                      float64
							Failed                    []string
							Created, Changes, Entries int
						}
						if err := json.Unmarshal(outb, &res); err != nil {
							b.Fatalf("child said %q: %v", outb, err)
						}
						if len(res.Failed) > 0 {
							b.Fatalf("schools failed: %v", res.Failed)
						}
						if want := map[string]int{"first": schools * r.pupils, "nochange": 0}[run]; res.Created != want || (run == "nochange" && res.Changes != 0) {
							b.Fatalf("%s run created %d pupils and made %d changes", run, res.Created, res.Changes)
						}
						rss := cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss // KiB on Linux
						// CPU seconds of the sync process and of slapd: unlike
						// the wall time, they hardly move on a busy machine.
						cpu := (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
						dirCPU := (s.cpu() - slapdCPU).Seconds()
						b.ReportMetric(res.Wall, "s/run")
						b.ReportMetric(float64(rss)/1024, "MB-peak-RSS")
						b.ReportMetric(cpu, "s-CPU-sync")
						b.ReportMetric(dirCPU, "s-CPU-slapd")
						b.Logf("%s %s: %d schools, %d entries, %d changes, %.1f s, CPU %.1f s (slapd %.1f s), peak RSS %d MB", backend, run, schools, res.Entries, res.Changes, res.Wall, cpu, dirCPU, rss/1024)
					}
				})
			}
		})
	}
}

// rawPagedRead reads every pupil of the directory with the paging
// control and nothing else, and returns how many it read.
func rawPagedRead(b *testing.B, s *slapd) int {
	c, err := ldap.DialURL(s.url)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(s.rootDN, s.rootPW); err != nil {
		b.Fatal(err)
	}
	var cookie []byte
	n := 0
	for {
		paging := ldap.NewControlPaging(1000)
		paging.SetCookie(cookie)
		res, err := c.Search(ldap.NewSearchRequest(base, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			"(&(objectClass=inetOrgPerson)(uid=p*))", []string{"entryUUID", "givenName", "sn", "schacDateOfBirth", "seeAlso"}, []ldap.Control{paging}))
		if err != nil {
			b.Fatal(err)
		}
		n += len(res.Entries)
		ctrl, _ := ldap.FindControl(res.Controls, ldap.ControlTypePaging).(*ldap.ControlPaging)
		if ctrl == nil || len(ctrl.Cookie) == 0 {
			return n
		}
		cookie = ctrl.Cookie
	}
}
