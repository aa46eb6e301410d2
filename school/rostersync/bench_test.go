package rostersync_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/rostersync"
	"github.com/elevid/elevid/school/sqlstore"
)

// benchPupils is the directory size of the benchmarks:
// ELEVID_BENCH_PUPILS, 100,000 by default.
func benchPupils() int {
	if n, err := strconv.Atoi(os.Getenv("ELEVID_BENCH_PUPILS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

func benchRoster(preset string) roster {
	n := benchPupils()
	return roster{preset: preset, pupils: n, guardians: n * 3 / 5, classes: max(1, n/25), staff: max(1, n/500)}
}

// openPostgres gives b its own schema in ELEVID_TEST_POSTGRES, or skips.
func openPostgres(tb testing.TB, clock *testClock) school.Store {
	st, _ := openPostgresDSN(tb, clock)
	return st
}

// openPostgresDSN is openPostgres that also returns the DSN of the
// schema, for a subprocess.
func openPostgresDSN(tb testing.TB, clock *testClock) (school.Store, string) {
	ctx := context.Background()
	dsn := testenv.PostgresSchema(tb, "rs")
	st, err := postgres.Open(ctx, dsn, sqlstore.Options{Now: clock.Now})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		tb.Fatal(err)
	}
	return st, dsn
}

// peakMem samples the Go heap until stop is called and returns the
// largest HeapSys (heap memory obtained from the OS) and HeapInuse seen.
func peakMem() (stop func() (sys, inuse uint64)) {
	var mu sync.Mutex
	var maxSys, maxInuse uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	sample := func() {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		mu.Lock()
		maxSys, maxInuse = max(maxSys, m.HeapSys), max(maxInuse, m.HeapInuse)
		mu.Unlock()
	}
	go func() {
		defer wg.Done()
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				sample()
			}
		}
	}()
	return func() (uint64, uint64) {
		close(done)
		wg.Wait()
		sample()
		return maxSys, maxInuse
	}
}

// BenchmarkSync100k syncs a generated directory of benchPupils() pupils
// (+ 60 % as many guardians, a class per 25 pupils, a teacher per 500)
// served by the in-process gldap server: the first full run into an empty
// store, then a full run with no change. Run with
//
//	go test ./school/rostersync -run '^$' -bench Sync100k -benchtime 1x
func BenchmarkSync100k(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			clock := newClock()
			var st school.Store
			if backend == "postgres" {
				st = openPostgres(b, clock)
			} else {
				st = openSQLite(b, clock)
			}
			r := benchRoster(school.PresetOpenLDAP)
			e := newEnv(b, r, st, clock)
			e.source(func(s *school.DirectorySource) { s.PageSize = 1000 })
			benchRuns(b, e, backend+"/gldap", r)
		})
	}
}

// BenchmarkSlapd100k is BenchmarkSync100k against a real slapd (loaded with
// slapadd), when ELEVID_BENCH_SLAPD is set.
func BenchmarkSlapd100k(b *testing.B) {
	if os.Getenv("ELEVID_BENCH_SLAPD") == "" {
		b.Skip("ELEVID_BENCH_SLAPD is not set")
	}
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			clock := newClock()
			var st school.Store
			if backend == "postgres" {
				st = openPostgres(b, clock)
			} else {
				st = openSQLite(b, clock)
			}
			r := benchRoster(school.PresetOpenLDAP)
			e, _ := slapdEnv(b, r, st, clock)
			e.source(func(s *school.DirectorySource) { s.PageSize = 1000 })
			benchRuns(b, e, backend+"/slapd", r)
		})
	}
}

// benchRuns measures a first full run and a no-change run.
func benchRuns(b *testing.B, e *env, backend string, r roster) {
	runtime.GC()
	measure := func(b *testing.B, name string, want int) {
		stop := peakMem()
		start := time.Now()
		var phases []string
		last := ""
		res, err := e.run(rostersync.RunOptions{Progress: func(p rostersync.Progress) {
			if p.Phase != last {
				phases = append(phases, fmt.Sprintf("%s@%s", p.Phase, time.Since(start).Round(time.Millisecond)))
				last = p.Phase
			}
		}})
		d := time.Since(start)
		sys, inuse := stop()
		if err != nil {
			b.Fatal(err)
		}
		if res.Run.Counts["pupil.create"] != want {
			b.Fatalf("%s: counts %v", name, res.Run.Counts)
		}
		b.ReportMetric(d.Seconds(), "s/run")
		b.ReportMetric(float64(sys)/(1<<20), "MB-heap-sys-peak")
		b.ReportMetric(float64(inuse)/(1<<20), "MB-heap-inuse-peak")
		b.Logf("%s %s: %d pupils, %d entries, %d pages, %s, peak heap sys %d MB (in use %d MB), counts %v, phases %v",
			backend, name, r.pupils, res.Run.Entries, res.Run.Pages, d.Round(time.Millisecond), sys>>20, inuse>>20, res.Run.Counts, phases)
	}
	b.Run("first", func(b *testing.B) {
		for range b.N {
			measure(b, "first full run", r.pupils)
		}
	})
	b.Run("nochange", func(b *testing.B) {
		for range b.N {
			measure(b, "no-change run", 0)
		}
	})
}
