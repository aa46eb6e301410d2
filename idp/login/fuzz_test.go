package login_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/elevid/elevid/internal/idptest"
)

// FuzzLoginJSON sends arbitrary JSON bodies (the WebAuthn assertion of a
// passkey login, and the begin request) to the login endpoints: they never
// panic, never answer 5xx, and never sign anyone in.
func FuzzLoginJSON(f *testing.F) {
	e := idptest.NewOIDCEnv(f)
	for _, s := range []string{
		`{}`, `{"ceremony":"x","credential":{}}`, `{"ceremony":"","credential":null}`,
		`{"ceremony":"x","credential":{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"","signature":"","userHandle":"AA"}}}`,
		`{"credential":{"id":"` + string(bytes.Repeat([]byte("A"), 2000)) + `"}}`,
		"{\"ceremony\":\"\xff\"}", `[`, `null`, `{"mediation":"conditional"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{"/login/begin", "/login/finish"} {
			req, _ := http.NewRequest(http.MethodPost, e.Server.URL+path, bytes.NewReader([]byte(body)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Fatalf("%s: %d for %q", path, resp.StatusCode, body)
			}
			if path == "/login/finish" && (resp.StatusCode == 200 || len(resp.Cookies()) > 0) {
				t.Fatalf("%s accepted %q", path, body)
			}
		}
	})
}
