package main

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"

	"github.com/elevid/elevid/internal/testenv"
)

// TestBenchLoginTwoNodes runs two `elevid serve` nodes on one database
// (one SQLite file; one PostgreSQL schema with ELEVID_TEST_POSTGRES) and
// `elevid bench login` against both: every request goes to the other
// node than the one before, so each flow's session cookie, ceremony and
// code cross nodes. No flow may fail, both nodes must have answered, and
// the database work summed from both metrics listeners must be printed.
func TestBenchLoginTwoNodes(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			dir := t.TempDir()
			dsn := filepath.Join(dir, "elevid.db")
			if db == "postgres" {
				dsn = testenv.PostgresSchema(t, "benchnodes")
			}
			ports := freePorts(t, 4)
			issuer := fmt.Sprintf("http://localhost:%d", ports[0])
			conf := func(port, metrics int) string {
				return fmt.Sprintf("listen: 127.0.0.1:%d\nissuer: %s\ndatabase: %q\nlog: {level: warn}\nserver: {metrics_listen: \"127.0.0.1:%d\"}\n",
					port, issuer, dsn, metrics)
			}
			fixture := filepath.Join(dir, "bench.json")
			if out, err := cli(t, writeConfig(t, conf(ports[0], ports[2])), "bench", "prepare", "--pupils", "8", "--fixture", fixture); err != nil {
				t.Fatalf("bench prepare: %v\n%s", err, out)
			}
			var bases, metrics []string
			for i := range 2 {
				base := fmt.Sprintf("http://localhost:%d", ports[i])
				ready := func() error {
					resp, err := http.Get(base + "/readyz")
					if err == nil {
						resp.Body.Close()
					}
					return err
				}
				startServe(t, conf(ports[i], ports[2+i]), ready)
				bases = append(bases, base)
				metrics = append(metrics, fmt.Sprintf("http://127.0.0.1:%d/metrics", ports[2+i]))
			}
			out, err := cli(t, writeConfig(t, conf(ports[0], ports[2])), "bench", "login", "--url", bases[0]+","+bases[1],
				"--metrics-url", metrics[0], "--metrics-url", metrics[1], "--fixture", fixture, "--concurrency", "4", "--duration", "1s")
			if err != nil {
				t.Fatalf("bench login: %v\n%s", err, out)
			}
			t.Logf("%s", out)
			m := regexp.MustCompile(`flows (\d+) in [0-9.]+s: \d+ flows/s, errors (\d+)`).FindStringSubmatch(out)
			if m == nil || m[1] == "0" || m[2] != "0" {
				t.Fatalf("want flows and no errors:\n%s", out)
			}
			for _, b := range bases {
				n := regexp.MustCompile(`node ` + regexp.QuoteMeta(b) + `: (\d+) requests`).FindStringSubmatch(out)
				if n == nil {
					t.Fatalf("no request count for node %s:\n%s", b, out)
				}
				if c, _ := strconv.Atoi(n[1]); c == 0 {
					t.Fatalf("node %s answered no request:\n%s", b, out)
				}
			}
			if !regexp.MustCompile(`(?m)^database: [0-9.]+ transactions`).MatchString(out) {
				t.Fatalf("database work of the two nodes not read:\n%s", out)
			}
		})
	}
}

// TestBenchSAML runs `elevid bench saml` against `elevid serve`: the
// bench SP that `bench prepare` registers gets signed Responses with
// signed Assertions and the granted attributes, every one of which the
// load generator checks, so no response may fail. The generator's
// garbage collection settings are its own for the run only.
func TestBenchSAML(t *testing.T) {
	dir := t.TempDir()
	ports := freePorts(t, 1)
	base := fmt.Sprintf("http://localhost:%d", ports[0])
	conf := writeConfig(t, fmt.Sprintf("listen: 127.0.0.1:%d\nissuer: %s\ndatabase: %q\nlog: {level: warn}\nserver: {metrics_listen: \"\"}\n",
		ports[0], base, filepath.Join(dir, "elevid.db")))
	fixture := filepath.Join(dir, "bench.json")
	if out, err := cli(t, conf, "bench", "prepare", "--pupils", "4", "--fixture", fixture); err != nil {
		t.Fatalf("bench prepare: %v\n%s", err, out)
	}
	raw, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	startServe(t, string(raw), func() error {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
		}
		return err
	})
	percent, limit := debug.SetGCPercent(123), debug.SetMemoryLimit(123<<20)
	t.Cleanup(func() { debug.SetGCPercent(percent); debug.SetMemoryLimit(limit) })
	out, err := cli(t, conf, "bench", "saml", "--url", base, "--fixture", fixture, "--concurrency", "2", "--duration", "1s")
	if err != nil {
		t.Fatalf("bench saml: %v\n%s", err, out)
	}
	if p, l := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64); p != 123 || l != 123<<20 {
		t.Errorf("after bench saml: GOGC %d, limit %d; want 123 and 123 MiB again", p, l)
	}
	t.Logf("%s", out)
	m := regexp.MustCompile(`responses (\d+) in [0-9.]+s: \d+ responses/s, errors (\d+)`).FindStringSubmatch(out)
	if m == nil || m[1] == "0" || m[2] != "0" {
		t.Fatalf("want responses and no errors:\n%s", out)
	}
	if !strings.Contains(out, "signatures: response true, assertion true") {
		t.Fatalf("both signatures not reported:\n%s", out)
	}
}
