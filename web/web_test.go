package web_test

import (
	"net/http/httptest"
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
