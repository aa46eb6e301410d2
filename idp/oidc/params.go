package oidc

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// errRepeatedParam says a request repeated a parameter.
var errRepeatedParam = errors.New("repeated parameter")

// repeatedParam reports the first parameter that r carries more than once,
// in its query, in its form body, or in both together. RFC 6749 §3.1:
// "Request and response parameters MUST NOT be included more than once."
// Two readers of one request (ElevID's checks and zitadel's decoder) could
// otherwise each take another value, e.g. code_challenge_method=S256 for
// one and plain for the other. It parses the form (r.ParseForm) itself.
func repeatedParam(r *http.Request) (string, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return "", fmt.Errorf("query: %w", err)
	}
	seen := map[string]bool{}
	for k, vs := range q {
		if len(vs) > 1 {
			return k, errRepeatedParam
		}
		seen[k] = true
	}
	if r.Method != http.MethodPost {
		return "", nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		return "", nil
	}
	if err := r.ParseForm(); err != nil {
		return "", fmt.Errorf("form: %w", err)
	}
	for k, vs := range r.PostForm {
		if len(vs) > 1 || seen[k] {
			return k, errRepeatedParam
		}
	}
	return "", nil
}

// singleParams refuses a request that repeats a parameter before h sees
// it: onError answers with what fits the endpoint.
func singleParams(h http.HandlerFunc, onError func(w http.ResponseWriter, r *http.Request, name string, err error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if name, err := repeatedParam(r); err != nil {
			onError(w, r, name, err)
			return
		}
		h(w, r)
	}
}

// bearerError answers a protected-resource request (userinfo) as RFC 6750
// §3 says: the status, a WWW-Authenticate challenge and, with a code, the
// same error as JSON.
func bearerError(w http.ResponseWriter, status int, code, desc string) {
	challenge := `Bearer realm="elevid"`
	if code != "" {
		challenge += fmt.Sprintf(`, error=%q`, code)
		if desc != "" {
			challenge += fmt.Sprintf(`, error_description=%q`, strings.ReplaceAll(desc, `"`, "'"))
		}
	}
	w.Header().Set("WWW-Authenticate", challenge)
	w.Header().Set("Cache-Control", "no-store")
	if code == "" {
		w.WriteHeader(status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = fmt.Fprintf(w, `{"error":%q,"error_description":%q}`, code, desc)
}
