package main

import (
	"bytes"
	"compress/flate"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
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
// load generator checks after the timed window, so no response may fail.
// The generator's garbage collection settings are its own for the run
// only. Then it runs through a proxy that alters every fifth Response
// after the sign-in round: each altered one is counted as an error when
// checked after the window, and every AuthnRequest sent has its own
// request ID and RelayState.
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
	responses, errs := samlBenchCounts(t, out)
	if responses == 0 || errs != 0 {
		t.Fatalf("want responses and no errors:\n%s", out)
	}
	if !strings.Contains(out, "signatures: response true, assertion true") {
		t.Fatalf("both signatures not reported:\n%s", out)
	}
	// Signed before the window (1000 per second of it), nothing signed or
	// checked inside it, every response checked after it.
	if !regexp.MustCompile(`(?m)^before the window: 1000 AuthnRequests signed \(for 1000 responses/s\) in [0-9.]+s, [0-9.]+ ms CPU each; \d+ sent$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^CPU of this process: [0-9.]+ ms per response inside the window \(HTTP exchanges; 0 AuthnRequests signed and 0 responses checked there\)$`).MatchString(out) ||
		!regexp.MustCompile(fmt.Sprintf(`(?m)^after the window: %d responses checked in [0-9.]+s, [0-9.]+ ms CPU each `, responses)).MatchString(out) {
		t.Fatalf("signing and checking outside the window not reported:\n%s", out)
	}

	// Through the tampering proxy: the 2 first pages are the sign-in round's.
	target, _ := url.Parse(base)
	var (
		mu       sync.Mutex
		pages    int
		altered  int
		ids      = map[string]int{}
		relays   = map[string]int{}
		requests int
	)
	idRE := regexp.MustCompile(`ID="([^"]+)"`)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			if pr.In.URL.Path != "/saml/sso" {
				return
			}
			q := pr.In.URL.Query()
			deflated, err := base64.StdEncoding.DecodeString(q.Get("SAMLRequest"))
			if err != nil {
				t.Errorf("SAMLRequest: %v", err)
				return
			}
			xml, err := io.ReadAll(flate.NewReader(bytes.NewReader(deflated)))
			m := idRE.FindSubmatch(xml)
			if err != nil || m == nil {
				t.Errorf("AuthnRequest %q: %v", xml, err)
				return
			}
			mu.Lock()
			requests++
			ids[string(m[1])]++
			relays[q.Get("RelayState")]++
			mu.Unlock()
		},
		ModifyResponse: func(resp *http.Response) error {
			if resp.StatusCode != http.StatusOK || resp.Request.URL.Path == "/saml/sso" {
				return nil
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			if s := string(body); strings.Contains(s, `id="auto-post-form"`) {
				mu.Lock()
				pages++
				alter := pages > 2 && pages%5 == 0
				if alter {
					altered++
				}
				mu.Unlock()
				if alter {
					body = []byte(alterSAMLResponse(t, s))
				}
			}
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
	}
	ps := httptest.NewServer(proxy)
	t.Cleanup(ps.Close)
	proxyURL := "http://localhost:" + strings.TrimPrefix(ps.URL, "http://127.0.0.1:")
	out, err = cli(t, conf, "bench", "saml", "--url", proxyURL, "--fixture", fixture, "--concurrency", "2", "--duration", "1s")
	if err != nil {
		t.Fatalf("bench saml through the proxy: %v\n%s", err, out)
	}
	t.Logf("through the proxy:\n%s", out)
	responses, errs = samlBenchCounts(t, out)
	mu.Lock()
	defer mu.Unlock()
	if responses == 0 || errs != altered || responses+errs != pages-2 {
		t.Errorf("%d responses and %d errors; want %d altered of %d pages in the window refused, the others passed", responses, errs, altered, pages-2)
	}
	if !strings.Contains(out, "first error: response refused") {
		t.Errorf("the altered Response's refusal is not the first error:\n%s", out)
	}
	if !regexp.MustCompile(fmt.Sprintf(`(?m)^after the window: %d responses checked `, responses+errs)).MatchString(out) {
		t.Errorf("want %d responses checked after the window:\n%s", responses+errs, out)
	}
	if len(ids) != requests || len(relays) != requests || requests != pages {
		t.Errorf("%d AuthnRequests sent with %d request IDs and %d RelayStates for %d pages; want each its own", requests, len(ids), len(relays), pages)
	}
}

// samlBenchCounts reads the responses and errors `bench saml` printed.
func samlBenchCounts(t *testing.T, out string) (responses, errs int) {
	t.Helper()
	m := regexp.MustCompile(`responses (\d+) in [0-9.]+s: \d+ responses/s, errors (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no responses/s line:\n%s", out)
	}
	responses, _ = strconv.Atoi(m[1])
	errs, _ = strconv.Atoi(m[2])
	return responses, errs
}

// alterSAMLResponse changes the signed Status in the SAMLResponse of
// ElevID's auto-posting form page, whose signature then fails.
func alterSAMLResponse(t *testing.T, page string) string {
	const field = `name="SAMLResponse" value="`
	i := strings.Index(page, field)
	if i < 0 {
		t.Errorf("no SAMLResponse in %q", page)
		return page
	}
	i += len(field)
	j := i + strings.IndexByte(page[i:], '"')
	raw, err := base64.StdEncoding.DecodeString(html.UnescapeString(page[i:j]))
	if err != nil {
		t.Error(err)
		return page
	}
	s := strings.Replace(string(raw), "status:Success", "status:Success ", 1)
	if s == string(raw) {
		t.Errorf("no Status in %s", raw)
	}
	return page[:i] + html.EscapeString(base64.StdEncoding.EncodeToString([]byte(s))) + page[j:]
}
