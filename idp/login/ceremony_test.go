package login_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/descope/virtualwebauthn"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
)

// TestLoginCeremonyOnce: a login ceremony is a sealed value the browser
// holds, not a row, so its single use rests on the session it creates. A
// replayed finish (same ceremony, same assertion) is refused while the
// ceremony lives — also after the first session was signed out and the
// store purged — and an altered or expired ceremony is refused, on both
// stores.
func TestLoginCeremonyOnce(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			ctx := context.Background()
			e := idptest.NewOIDCEnvOn(t, db == "postgres", oidc.KeyPolicy{})
			b := idptest.NewBrowser()
			post := func(path string, v any) (int, map[string]json.RawMessage) {
				t.Helper()
				raw, _ := json.Marshal(v)
				req, _ := http.NewRequest(http.MethodPost, e.Server.URL+path, bytes.NewReader(raw))
				req.Header.Set("Content-Type", "application/json")
				resp, err := b.Client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				var out map[string]json.RawMessage
				_ = json.Unmarshal([]byte(idptest.Body(t, resp)), &out)
				return resp.StatusCode, out
			}
			begin := func() (string, json.RawMessage) {
				t.Helper()
				status, begun := post("/login/begin", map[string]string{})
				var cer string
				_ = json.Unmarshal(begun["ceremony"], &cer)
				opts, err := virtualwebauthn.ParseAssertionOptions(string(begun["options"]))
				if status != 200 || err != nil || cer == "" {
					t.Fatalf("begin: %d %v", status, err)
				}
				cred := virtualwebauthn.CreateAssertionResponse(e.RPID, e.Auth, e.Cred, *opts)
				e.Cred.Counter++
				return cer, json.RawMessage(cred)
			}
			sessions := func() int {
				t.Helper()
				l, err := e.Store.ListSessions(ctx, e.Pupil.ID)
				if err != nil {
					t.Fatal(err)
				}
				return len(l)
			}
			refused := func(what string, body map[string]any) {
				t.Helper()
				status, out := post("/login/finish", body)
				if status != http.StatusBadRequest || string(out["ok"]) == "true" {
					t.Fatalf("%s: %d %s", what, status, out["error"])
				}
			}

			cer, cred := begin()
			first := map[string]any{"ceremony": cer, "credential": cred, "return_to": "/me"}
			if status, out := post("/login/finish", first); status != 200 {
				t.Fatalf("login: %d %s", status, out["error"])
			}
			refused("replayed finish", first)
			if n := sessions(); n != 1 {
				t.Fatalf("%d sessions after a replay, want 1", n)
			}
			// Sign the session out and purge: the row stays as long as
			// its ceremony could live, so the replay is still refused.
			l, _ := e.Store.ListSessions(ctx, e.Pupil.ID)
			if err := e.Store.RevokeSession(ctx, e.Pupil.ID, l[0].Ref, "logout"); err != nil {
				t.Fatal(err)
			}
			e.Clock.Advance(time.Minute)
			if _, err := e.Store.PurgeAuthnState(ctx, e.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			if _, err := e.Store.Purge(ctx, school.PurgeExpired, e.Clock.Now(), e.Clock.Now(), 1000); err != nil {
				t.Fatal(err)
			}
			refused("replay after sign-out and purge", first)
			if n := sessions(); n != 0 {
				t.Fatalf("a replay after sign-out made %d sessions", n)
			}

			cer, cred = begin()
			alt := []byte(cer)
			alt[len(alt)/2] ^= 1
			refused("altered ceremony", map[string]any{"ceremony": string(alt), "credential": cred})
			refused("no ceremony", map[string]any{"ceremony": "", "credential": cred})
			e.Clock.Advance(6 * time.Minute) // past the login timeout
			refused("expired ceremony", map[string]any{"ceremony": cer, "credential": cred})
			if n := sessions(); n != 0 {
				t.Fatalf("%d sessions from refused ceremonies", n)
			}
		})
	}
}

// TestLoginBeginLimit: one client address may start MaxBegins login
// ceremonies per window (counted in memory: a ceremony stores nothing);
// others are not held up, and the next window starts afresh.
func TestLoginBeginLimit(t *testing.T) {
	clock := &idptest.Clock{}
	st, _ := idptest.OpenStore(t, false, clock.Now)
	l, err := login.NewLogin(login.LoginOptions{Store: st, Site: webtest.NewSite(t), Issuer: "http://localhost", Now: clock.Now,
		Logger: idptest.Logger(), MaxBegins: 3, BeginWindow: time.Minute,
		Passkey:     passkey.Config{RPID: "localhost", Origins: []string{"http://localhost"}},
		SessionKeys: [][]byte{bytes.Repeat([]byte("h"), 64), bytes.Repeat([]byte("b"), 32)}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	l.Mount(mux)
	begin := func(addr string) int {
		req := httptest.NewRequest(http.MethodPost, "http://localhost/login/begin", strings.NewReader(`{}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = addr
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		return rec.Code
	}
	for i := range 3 {
		if code := begin("192.0.2.1:1000"); code != 200 {
			t.Fatalf("begin %d: %d", i+1, code)
		}
	}
	if code := begin("192.0.2.1:1001"); code != http.StatusTooManyRequests {
		t.Fatalf("fourth begin from one address: %d, want 429", code)
	}
	if code := begin("192.0.2.2:1000"); code != 200 {
		t.Fatalf("another address: %d", code)
	}
	clock.Advance(time.Minute)
	if code := begin("192.0.2.1:1000"); code != 200 {
		t.Fatalf("next window: %d", code)
	}
}
