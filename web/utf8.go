package web

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"unicode/utf8"
)

// ValidUTF8 refuses, with a 400 and a translated message ("error.utf8"),
// any request whose path, query, form body or JSON body is not valid
// UTF-8: such text would be stored as is (SQLite) or make the database
// fail (PostgreSQL). Form and JSON bodies are read (within the body limit
// of LimitBody, which must wrap this handler) and handed on unchanged.
// A JSON request gets a JSON answer.
func (s *Site) ValidUTF8(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		refuse := func(what string) {
			s.log.Warn("request refused: invalid UTF-8", "method", r.Method, "path", r.URL.Path, "in", what)
			if ct == "application/json" {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_utf8", "message": s.T(Lang(r), "error.utf8")})
				return
			}
			s.Error(w, r, http.StatusBadRequest, "error.utf8")
		}
		if !utf8.ValidString(r.URL.Path) {
			refuse("path")
			return
		}
		if !validValues(r.URL.RawQuery) {
			refuse("query")
			return
		}
		if r.Body == nil || r.Body == http.NoBody || (ct != "application/x-www-form-urlencoded" && ct != "application/json") {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		if err != nil {
			if IsTooLarge(err) {
				w.Header().Set("Connection", "close")
				http.Error(w, "request too large", http.StatusRequestEntityTooLarge)
				return
			}
			s.Error(w, r, http.StatusBadRequest, "error.bad_request")
			return
		}
		ok := utf8.Valid(body)
		if ok && ct == "application/x-www-form-urlencoded" {
			ok = validValues(string(body))
		}
		if !ok {
			refuse("body")
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// validValues reports whether every key and value of a URL-encoded string
// decodes to valid UTF-8 (pairs that do not decode at all are left to the
// handler, which answers them as a bad request).
func validValues(raw string) bool {
	if raw == "" {
		return true
	}
	v, _ := url.ParseQuery(raw)
	for k, vs := range v {
		if !utf8.ValidString(k) {
			return false
		}
		for _, s := range vs {
			if !utf8.ValidString(s) {
				return false
			}
		}
	}
	return true
}
