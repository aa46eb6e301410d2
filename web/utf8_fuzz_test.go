package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/elevid/elevid/internal/webtest"
)

// FuzzValidUTF8 sends arbitrary form and JSON bodies through the UTF-8
// check: no panic; what reaches the handler is valid UTF-8 and unchanged.
func FuzzValidUTF8(f *testing.F) {
	for _, s := range []string{"name=bad%ff%fe", "name=B%C3%B8je", "{\"n\":\"\xff\"}", "a=%zz&b=%c3", ""} {
		f.Add(s, true)
		f.Add(s, false)
	}
	s := webtest.NewSite(f)
	f.Fuzz(func(t *testing.T, body string, form bool) {
		var got string
		reached := false
		h := s.ValidUTF8(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			got, reached = string(b), true
		}))
		req := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
		req.Header.Set("Content-Type", map[bool]string{true: "application/x-www-form-urlencoded", false: "application/json"}[form])
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if reached && (got != body || !utf8.ValidString(body)) {
			t.Fatalf("handler got %q for %q", got, body)
		}
		if !reached && rec.Code != http.StatusBadRequest {
			t.Fatalf("refused with %d", rec.Code)
		}
	})
}
