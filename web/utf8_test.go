package web_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/elevid/elevid/internal/webtest"
)

// TestValidUTF8 (issue 15, item 6): invalid UTF-8 in the query, a form or
// a JSON body gets a 400 with the translated message; valid requests
// reach the handler with their body intact.
func TestValidUTF8(t *testing.T) {
	s := webtest.NewSite(t)
	var got string
	h := s.ValidUTF8(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = string(b)
		w.WriteHeader(http.StatusNoContent)
	}))
	send := func(method, target, ctype, body string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, target, strings.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		req.Header.Set("Accept-Language", "en")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	for name, c := range map[string][4]string{
		"query":              {"GET", "/x?name=bad%ff%fe", "", ""},
		"query key":          {"GET", "/x?%c3=1", "", ""},
		"form value":         {"POST", "/x", "application/x-www-form-urlencoded", "name=bad%ff%fe&role=teacher"},
		"raw form byte":      {"POST", "/x", "application/x-www-form-urlencoded; charset=utf-8", "name=bad\xff"},
		"JSON":               {"POST", "/x", "application/json", "{\"name\":\"bad\xff\xfe\"}"},
		"JSON with charset":  {"POST", "/x", "application/json; charset=utf-8", "{\"n\":\"\xc3\"}"},
		"form and bad pairs": {"POST", "/x", "application/x-www-form-urlencoded", "a=%zz&name=%ff"},
	} {
		rec := send(c[0], c[1], c[2], c[3])
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "not valid text") {
			t.Errorf("%s: %d %q", name, rec.Code, rec.Body.String())
		}
	}
	for _, body := range []string{"name=B%C3%B8je+%C3%86r%C3%B8", "name=Bøje"} {
		if rec := send("POST", "/x?q=%C3%A6", "application/x-www-form-urlencoded", body); rec.Code != http.StatusNoContent || got != body {
			t.Errorf("valid form %q: %d, handler got %q", body, rec.Code, got)
		}
	}
	if rec := send("POST", "/x", "application/json", `{"name":"Bøje \u00e6"}`); rec.Code != http.StatusNoContent || got != `{"name":"Bøje \u00e6"}` {
		t.Errorf("valid JSON: %d %q", rec.Code, got)
	}
	if rec := send("POST", "/x", "application/json", "{\"n\":\"\xff\"}"); !strings.Contains(rec.Header().Get("Content-Type"), "application/json") {
		t.Errorf("a JSON request gets a %q answer", rec.Header().Get("Content-Type"))
	}
}
