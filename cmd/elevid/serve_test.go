package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// newTestServer starts the whole handler on a fresh SQLite database.
func newTestServer(t *testing.T, demo bool) (*httptest.Server, *app) {
	t.Helper()
	ctx := context.Background()
	cfg, err := LoadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = filepath.Join(t.TempDir(), "elevid.db")
	log := slog.New(slog.DiscardHandler)
	a := openTestApp(t, cfg, log)
	if demo {
		if err := seedDemo(ctx, a, io.Discard); err != nil {
			t.Fatal(err)
		}
	}
	h, _, err := newHandler(ctx, a, demo)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv, a
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestHealthAndReadiness(t *testing.T) {
	srv, a := newTestServer(t, false)
	if resp, body := get(t, srv.URL+"/healthz", nil); resp.StatusCode != 200 || body != "ok\n" {
		t.Fatalf("healthz = %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv.URL+"/readyz", nil); resp.StatusCode != 200 {
		t.Fatalf("readyz = %d", resp.StatusCode)
	}
	a.store.Close() // the database goes away
	if resp, body := get(t, srv.URL+"/readyz", nil); resp.StatusCode != http.StatusServiceUnavailable || strings.Contains(body, "sql") {
		t.Fatalf("readyz with store down = %d %q", resp.StatusCode, body)
	}
	if resp, _ := get(t, srv.URL+"/healthz", nil); resp.StatusCode != 200 {
		t.Fatalf("healthz must not depend on the store: %d", resp.StatusCode)
	}
}

func TestMetrics(t *testing.T) {
	srv, a := newTestServer(t, false)
	get(t, srv.URL+"/", nil)
	get(t, srv.URL+"/no-such-page", nil)
	// The main listener does not serve the metrics (issue 15, item 7).
	if resp, body := get(t, srv.URL+"/metrics", nil); resp.StatusCode != http.StatusNotFound || strings.Contains(body, "elevid_http_requests_total") {
		t.Fatalf("main listener /metrics = %d", resp.StatusCode)
	}
	msrv := httptest.NewServer(metricsHandler(a, ""))
	t.Cleanup(msrv.Close)
	resp, body := get(t, msrv.URL+"/metrics", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics = %d", resp.StatusCode)
	}
	for _, want := range []string{
		`elevid_http_requests_total{code="200",method="GET",route="GET /{$}"} 1`,
		`elevid_http_requests_total{code="404",method="GET",route="/"} 2`,
		`elevid_http_request_duration_seconds_bucket{route="GET /{$}"`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestMetricsToken(t *testing.T) {
	_, a := newTestServer(t, false)
	const token = "metrics-token-0123456789"
	msrv := httptest.NewServer(metricsHandler(a, token))
	t.Cleanup(msrv.Close)
	for name, hdr := range map[string]map[string]string{
		"no token": nil, "wrong token": {"Authorization": "Bearer nope-nope-nope-nope"}, "basic": {"Authorization": "Basic " + token},
	} {
		if resp, body := get(t, msrv.URL+"/metrics", hdr); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "go_goroutines") {
			t.Fatalf("%s: %d", name, resp.StatusCode)
		}
		// The profiles (which show code paths and memory) are guarded the same way.
		if resp, body := get(t, msrv.URL+"/debug/pprof/heap?debug=1", hdr); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "heap profile") {
			t.Fatalf("%s: pprof %d", name, resp.StatusCode)
		}
	}
	if resp, body := get(t, msrv.URL+"/metrics", map[string]string{"Authorization": "Bearer " + token}); resp.StatusCode != 200 || !strings.Contains(body, "go_goroutines") {
		t.Fatalf("with the token: %d", resp.StatusCode)
	}
	if resp, body := get(t, msrv.URL+"/debug/pprof/heap?debug=1", map[string]string{"Authorization": "Bearer " + token}); resp.StatusCode != 200 || !strings.Contains(body, "heap profile") {
		t.Fatalf("pprof with the token: %d", resp.StatusCode)
	}
}

func TestMetricsListenConfig(t *testing.T) {
	cfg, err := LoadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.MetricsListen != "127.0.0.1:9090" {
		t.Fatalf("default metrics_listen = %q", cfg.Server.MetricsListen)
	}
	cfg.Server.MetricsListen = "0.0.0.0:9090"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "server.metrics_listen") {
		t.Fatalf("open metrics listener without a token: %v", err)
	}
	cfg.Server.MetricsToken = "metrics-token-0123456789"
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "metrics") {
		t.Fatalf("open metrics listener with a token: %v", err)
	}
	cfg.Server.MetricsListen = ""
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "metrics") {
		t.Fatalf("metrics disabled: %v", err)
	}
}

func TestSecurityHeaders(t *testing.T) {
	srv, _ := newTestServer(t, false)
	resp, _ := get(t, srv.URL+"/", nil)
	want := map[string]string{
		"Content-Security-Policy": "default-src 'self'; script-src 'self'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
	}
	for k, v := range want {
		if !strings.Contains(resp.Header.Get(k), v) {
			t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
		}
	}
	if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Error("CSP allows framing")
	}
	if strings.Contains(resp.Header.Get("Content-Security-Policy"), "unsafe-inline") {
		t.Error("CSP allows inline script")
	}
	if resp.Header.Get("Strict-Transport-Security") != "" {
		t.Error("HSTS on an http issuer")
	}
}

func TestCrossOriginPostRefused(t *testing.T) {
	srv, _ := newTestServer(t, false)
	post := func(hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/anything", strings.NewReader("a=b"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Fatalf("cross-site POST = %d, want 403", code)
	}
	if code := post(map[string]string{"Origin": "https://evil.example"}); code != http.StatusForbidden {
		t.Fatalf("foreign-origin POST = %d, want 403", code)
	}
	// Same-origin POSTs get through (to the 404 of an unknown route).
	if code := post(map[string]string{"Sec-Fetch-Site": "same-origin"}); code != http.StatusNotFound {
		t.Fatalf("same-origin POST = %d, want 404", code)
	}
}

func TestBodyLimit(t *testing.T) {
	srv, _ := newTestServer(t, false)
	resp, err := http.Post(srv.URL+"/anything", "application/octet-stream", bytes.NewReader(make([]byte, 2<<20)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("2 MiB body = %d, want 413", resp.StatusCode)
	}
}

func TestLanguageSelection(t *testing.T) {
	srv, _ := newTestServer(t, false)
	tests := []struct {
		hdr      map[string]string
		wantLang string
		wantText string
	}{
		{nil, "da", "Log ind"},
		{map[string]string{"Accept-Language": "en-GB,en;q=0.9"}, "en", "Sign in"},
		{map[string]string{"Accept-Language": "de, en;q=0.5, da;q=0.7"}, "da", "Log ind"},
		{map[string]string{"Accept-Language": "nb-NO"}, "da", "Log ind"},
		{map[string]string{"Accept-Language": "da", "Cookie": "lang=en"}, "en", "Sign in"},
		{map[string]string{"Cookie": "lang=xx", "Accept-Language": "en"}, "en", "Sign in"},
	}
	for _, tc := range tests {
		resp, body := get(t, srv.URL+"/", tc.hdr)
		if !strings.Contains(body, `<html lang="`+tc.wantLang+`">`) || !strings.Contains(body, tc.wantText) || resp.Header.Get("Content-Language") != tc.wantLang {
			t.Errorf("%v: got lang %q", tc.hdr, resp.Header.Get("Content-Language"))
		}
	}
	// The 404 page speaks the user's language too.
	if resp, body := get(t, srv.URL+"/missing", map[string]string{"Accept-Language": "en"}); resp.StatusCode != 404 || !strings.Contains(body, "The page does not exist.") {
		t.Errorf("English 404 = %d", resp.StatusCode)
	}
	if _, body := get(t, srv.URL+"/missing", nil); !strings.Contains(body, "Siden findes ikke.") {
		t.Error("Danish 404 missing")
	}
	// The switch sets a cookie and never redirects off-site.
	for ret, want := range map[string]string{"/login": "/login", "//evil.example/x": "/", "https://evil.example": "/", `/\evil.example`: "/"} {
		resp, _ := get(t, srv.URL+"/lang/en?return="+ret, nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
			t.Errorf("switch return=%q: %d → %q, want %q", ret, resp.StatusCode, resp.Header.Get("Location"), want)
		}
		if c := resp.Cookies(); len(c) != 1 || c[0].Value != "en" || !c[0].HttpOnly {
			t.Errorf("switch cookie = %+v", c)
		}
	}
	if resp, _ := get(t, srv.URL+"/lang/xx", nil); resp.StatusCode != 404 {
		t.Errorf("unknown language = %d", resp.StatusCode)
	}
}

func TestDemoIsMarkedAndIdempotent(t *testing.T) {
	srv, a := newTestServer(t, true)
	if _, body := get(t, srv.URL+"/", nil); !strings.Contains(body, "demo-banner") {
		t.Fatal("demo pages are not marked as demo")
	}
	if err := seedDemo(context.Background(), a, io.Discard); err != nil {
		t.Fatal(err)
	}
	schools, _ := a.store.ListSchools(context.Background())
	if len(schools) != 1 {
		t.Fatalf("seeding twice made %d schools", len(schools))
	}
	plain, _ := newTestServer(t, false)
	if _, body := get(t, plain.URL+"/", nil); strings.Contains(body, "demo-banner") {
		t.Fatal("non-demo page marked as demo")
	}
}

func TestInvalidConfigFailsStart(t *testing.T) {
	var out, errb bytes.Buffer
	p := writeConfig(t, "listen: nope\nlog:\n  level: loud\n")
	err := run(context.Background(), []string{"serve", "--config", p}, &out, &errb, noEnv)
	if err == nil || !strings.Contains(err.Error(), "listen:") || !strings.Contains(err.Error(), "log.level:") {
		t.Fatalf("serve with bad config = %v", err)
	}
}

func TestPrivacyNotice(t *testing.T) {
	srv, a := newTestServer(t, true)
	ctx := context.Background()
	if _, err := a.store.CreatePlatform(ctx, school.Platform{Name: "MatematikFessor", Protocol: school.ProtocolOIDC, ClientID: "mf",
		Attributes: []school.AttributeGrant{{Name: "given_name", JustificationDA: "Læreren ser elevens fornavn", JustificationEN: "Læreren ser elevens fornavn"}}}); err != nil {
		t.Fatal(err)
	}
	resp, body := get(t, srv.URL+"/privacy", nil)
	for _, want := range []string{"Privatlivserklæring", "Demoskolen", "MatematikFessor", "Læreren ser elevens fornavn", "730 dage", "60 dage", "Datatilsynet"} {
		if !strings.Contains(body, want) {
			t.Errorf("privacy notice lacks %q", want)
		}
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if _, body := get(t, srv.URL+"/privacy", map[string]string{"Accept-Language": "en"}); !strings.Contains(body, "Log of staff access: 730 days.") {
		t.Error("English privacy notice missing")
	}
}

func TestDemoMailShowsWholeMailWithLinks(t *testing.T) {
	srv, a := newTestServer(t, true)
	ctx := context.Background()
	s, err := a.store.SchoolByCode(ctx, "demo")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []school.Mail{
		{SchoolID: s.ID, Kind: "consent_request", To: "old@example.dk", Subject: "Første", Text: "Gammel mail", HTML: "<p>gammel</p>"},
		{SchoolID: s.ID, Kind: "consent_request", To: "sofie.jensen@example.dk", Subject: "Samtykke til Freja",
			Text: "Åbn linket: http://localhost:8080/consent/abc?x=1&y=<2>.\nHilsen", HTML: "<p>Hej <a href=\"http://localhost:8080/consent/abc\">link</a></p>"},
	} {
		if _, err := a.store.EnqueueMail(ctx, m); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct creation times
	}
	_, body := get(t, srv.URL+"/demo/mail", nil)
	if !strings.Contains(body, `<a href="http://localhost:8080/consent/abc?x=1&amp;y=">http://localhost:8080/consent/abc?x=1&amp;y=</a>&lt;2&gt;.`) {
		t.Fatalf("the consent link is not a working link:\n%s", body)
	}
	if strings.Index(body, "Samtykke til Freja") > strings.Index(body, "Første") {
		t.Fatal("mail is not newest first")
	}
	if strings.Contains(body, "indholdet er slettet") {
		t.Fatal("pending mail shown as deleted")
	}
	mails, _ := a.store.ListMail(ctx, school.MailFilter{})
	resp, html := get(t, srv.URL+"/demo/mail/"+mails[0].ID, nil)
	if resp.StatusCode != 200 || !strings.Contains(html, `<a href="http://localhost:8080/consent/abc">link</a>`) {
		t.Fatalf("HTML body = %d %q", resp.StatusCode, html)
	}
	plain, _ := newTestServer(t, false)
	if resp, _ := get(t, plain.URL+"/demo/mail", nil); resp.StatusCode != 404 {
		t.Fatalf("/demo/mail outside demo mode = %d", resp.StatusCode)
	}
}

func TestDemoRefusesHTTPS(t *testing.T) {
	cfg, err := LoadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = filepath.Join(t.TempDir(), "elevid.db")
	cfg.Issuer = "https://id.example.dk"
	err = serve(context.Background(), cfg, slog.New(slog.DiscardHandler), true, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "https") || !strings.Contains(err.Error(), "--demo") {
		t.Fatalf("serve --demo on https = %v", err)
	}
	// A database once seeded by --demo keeps the published teacher
	// password: an https instance refuses it.
	_, a := newTestServer(t, true)
	if err := refuseDemoTeacher(context.Background(), a); err == nil || !strings.Contains(err.Error(), "laerer") {
		t.Fatalf("refuseDemoTeacher on a demo database = %v", err)
	}
	_, empty := newTestServer(t, false)
	if err := refuseDemoTeacher(context.Background(), empty); err != nil {
		t.Fatal(err)
	}
}

func TestServerTimeZoneAndProxiesConfig(t *testing.T) {
	var out, errb bytes.Buffer
	p := writeConfig(t, "server:\n  time_zone: Mars/Olympus\n  trusted_proxies: [10.0.0.0/8, nope, 192.0.2.1]\n")
	err := run(context.Background(), []string{"serve", "--config", p}, &out, &errb, noEnv)
	if err == nil || !strings.Contains(err.Error(), "server.time_zone:") || !strings.Contains(err.Error(), `server.trusted_proxies: "nope"`) {
		t.Fatalf("serve with bad server config = %v", err)
	}
	cfg, err := LoadConfig(writeConfig(t, "server:\n  trusted_proxies: [10.0.0.0/8, 192.0.2.1]\n  time_zone: Europe/London\n"), noEnv)
	if err != nil || cfg.Validate() != nil {
		t.Fatalf("good config: %v / %v", err, cfg.Validate())
	}
	if got := cfg.Proxies(); len(got) != 2 || got[1].String() != "192.0.2.1/32" {
		t.Fatalf("Proxies = %v", got)
	}
	if cfg.Location().String() != "Europe/London" {
		t.Fatalf("Location = %v", cfg.Location())
	}
	def, _ := LoadConfig("", noEnv)
	if def.Location().String() != "Europe/Copenhagen" {
		t.Fatalf("default Location = %v", def.Location())
	}
}

// TestTuneGC: serving collects garbage at GOGC=400 under a 256 MiB soft
// limit unless the environment sets GOGC or GOMEMLIMIT itself.
func TestTuneGC(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(percent); debug.SetMemoryLimit(limit) })
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	tuneGC(env(nil))
	if p, l := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64); p != 400 || l != 256<<20 {
		t.Fatalf("defaults: GOGC %d, limit %d; want 400, 256 MiB", p, l)
	}
	tuneGC(env(map[string]string{"GOGC": "150", "GOMEMLIMIT": "1GiB"}))
	if p, l := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64); p != 100 || l != math.MaxInt64 {
		t.Fatalf("with GOGC and GOMEMLIMIT set, serve changed them: %d, %d", p, l)
	}
}
