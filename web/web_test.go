package web_test

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/web"
)

func TestSiteParsesEverything(t *testing.T) {
	s := webtest.NewSite(t)
	if got := s.T("en", "error.not_found"); got != "The page does not exist." {
		t.Fatalf("T = %q", got)
	}
	if got := s.T("da", "no.such.key"); got != "no.such.key" {
		t.Fatalf("unknown key = %q", got)
	}
}

func TestServerErrorHidesDetail(t *testing.T) {
	s := webtest.NewSite(t)
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/x", nil)
	s.ServerError(rec, req, errSecret("password=hunter2 at db.go:12"))
	body := rec.Body.String()
	if rec.Code != 500 {
		t.Fatalf("code = %d", rec.Code)
	}
	for _, leak := range []string{"hunter2", "db.go"} {
		if contains(body, leak) {
			t.Fatalf("500 page leaks %q", leak)
		}
	}
	if !contains(body, "Fejlreference") {
		t.Fatal("500 page lacks a reference")
	}
}

type errSecret string

func (e errSecret) Error() string { return string(e) }

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestTimeFormatOnePerLanguage(t *testing.T) {
	s := webtest.NewSite(t)
	winter := time.Date(2026, 12, 5, 20, 16, 0, 0, time.UTC) // 21:16 in Copenhagen
	summer := time.Date(2026, 5, 17, 6, 5, 0, 0, time.UTC)   // 08:05 in Copenhagen
	for _, c := range []struct {
		lang string
		t    time.Time
		want string
	}{
		{"da", winter, "5. dec. 2026 kl. 21.16"},
		{"en", winter, "5 Dec 2026, 21:16"},
		{"da", summer, "17. maj 2026 kl. 08.05"},
		{"en", summer, "17 May 2026, 08:05"},
		{"da", time.Time{}, "–"},
	} {
		if got := s.FormatTime(c.lang, c.t); got != c.want {
			t.Errorf("FormatTime(%s, %v) = %q, want %q", c.lang, c.t, got, c.want)
		}
	}
	if got := s.FormatDate("da", winter); got != "5. dec. 2026" {
		t.Errorf("FormatDate = %q", got)
	}
}

func TestGenitiveAndPlural(t *testing.T) {
	for _, c := range []struct{ lang, name, want string }{
		{"da", "Freja", "Frejas"}, {"da", "Jonas", "Jonas'"}, {"da", "Max", "Max'"}, {"da", "Liz", "Liz'"},
		{"en", "Freja", "Freja's"}, {"en", "Jonas", "Jonas'"},
	} {
		if got := web.Genitive(c.lang, c.name); got != c.want {
			t.Errorf("Genitive(%s, %s) = %q, want %q", c.lang, c.name, got, c.want)
		}
	}
	s := webtest.NewSite(t)
	for _, c := range []struct {
		n    int
		want string
	}{{1, "Der er sendt en samtykkeanmodning for 1 elev."}, {3, "Der er sendt samtykkeanmodninger for 3 elever."}} {
		if got := s.N("da", "console.sheet.consent_started", c.n, c.n); got != c.want {
			t.Errorf("N(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	if got := s.T("da", "parent.done.summary", s.N("da", "parent.done.platforms", 1, 1), s.N("da", "parent.done.platforms", 0, 0)); got != "Du har sagt ja til 1 platform og nej til ingen platforme." {
		t.Errorf("summary = %q", got)
	}
}

// TestJSONErrorReference checks the one JSON error answer: the user gets
// the translated message and a reference id and nothing of the detail;
// the log gets the detail under the same id, at level Error for a 5xx.
func TestJSONErrorReference(t *testing.T) {
	for _, c := range []struct {
		status int
		key    string
		detail error
		level  slog.Level
	}{
		{http.StatusBadRequest, "error.bad_request", nil, slog.LevelInfo},
		{http.StatusInternalServerError, "error.internal", errSecret("password=hunter2 at db.go:12"), slog.LevelError},
	} {
		var logs bytes.Buffer
		s, err := web.New(web.Options{Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		want := s.T("en", c.key)
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "/login/finish", nil)
		req.Header.Set("Accept-Language", "en")
		s.JSONError(rec, req, c.status, c.key, c.detail)
		if rec.Code != c.status || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
			t.Fatalf("%d: code %d, headers %v", c.status, rec.Code, rec.Header())
		}
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%d: body %q: %v", c.status, rec.Body, err)
		}
		ref, _ := body["ref"].(string)
		if body["error"] != want || body["ok"] != false || !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(ref) || len(body) != 3 {
			t.Fatalf("%d: body %v, want error %q, ok false and a reference", c.status, body, want)
		}
		if strings.Contains(rec.Body.String(), "hunter2") {
			t.Fatalf("%d: the answer leaks the detail: %s", c.status, rec.Body)
		}
		var line struct {
			Level, Ref, Key, Err string
		}
		if err := json.Unmarshal(logs.Bytes(), &line); err != nil {
			t.Fatalf("%d: log %q: %v", c.status, logs.String(), err)
		}
		if line.Ref != ref || line.Key != c.key || line.Level != c.level.String() {
			t.Fatalf("%d: log %+v, want ref %s, key %s, level %s", c.status, line, ref, c.key, c.level)
		}
		if c.detail != nil && line.Err != c.detail.Error() {
			t.Fatalf("%d: log lacks the detail: %s", c.status, logs.String())
		}
	}
}
