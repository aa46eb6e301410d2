package oidc

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// FuzzRepeatedParam fuzzes the repeated-parameter check of the OIDC
// endpoints (issue 15, item 2) with a query and a form body: it never
// panics, and whenever the query and form together hold a name twice it
// reports one (the two readers of a request, ElevID and zitadel, can then
// never disagree).
func FuzzRepeatedParam(f *testing.F) {
	for _, s := range [][2]string{
		{"client_id=pub&code_challenge=x&code_challenge_method=S256&code_challenge_method=plain", ""},
		{"code_challenge_method=plain", "client_id=pub&code_challenge_method=S256"},
		{"", "grant_type=authorization_code&grant_type=authorization_code&code=c"},
		{"redirect_uri=https%3A%2F%2Fa.example&redirect_uri=https%3A%2F%2Fb.example", ""},
		{"a=%zz&a=1", "b=%"},
		{"a;b=1&a=2", ""},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, query, body string) {
		r := httptest.NewRequest(http.MethodPost, "/oidc/token", strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		name, err := repeatedParam(r)
		if err != nil {
			return // refused (repeated or unparsable): the endpoint answers 400
		}
		if name != "" {
			t.Fatalf("a name %q without an error", name)
		}
		q, _ := url.ParseQuery(query)
		b, _ := url.ParseQuery(body)
		for k, vs := range q {
			if len(vs) > 1 || len(b[k]) > 0 {
				t.Fatalf("%q repeated but accepted: query %q body %q", k, query, body)
			}
		}
		for k, vs := range b {
			if len(vs) > 1 {
				t.Fatalf("%q repeated in the form but accepted: %q", k, body)
			}
		}
	})
}
