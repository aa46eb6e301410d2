package web_test

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/elevid/elevid/web"
)

func TestSiteParsesEverything(t *testing.T) {
	s := web.NewTestSite(t)
	if got := s.T("en", "error.not_found"); got != "The page does not exist." {
		t.Fatalf("T = %q", got)
	}
	if got := s.T("da", "no.such.key"); got != "no.such.key" {
		t.Fatalf("unknown key = %q", got)
	}
}

func TestServerErrorHidesDetail(t *testing.T) {
	s := web.NewTestSite(t)
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
