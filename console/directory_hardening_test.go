package console_test

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/school"
)

// recordingTester records what a connection test was given.
type recordingTester struct {
	mu    sync.Mutex
	calls []string // "URL|bindDN|password"
}

func (r *recordingTester) TestConnection(_ context.Context, src school.DirectorySource, pw []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, src.URL+"|"+src.BindDN+"|"+string(pw))
	return nil
}

// TestDirectoryPasswordNeverToNewHost (issue 15, item 1): the probe saved a
// new URL with the password field empty and ran "test connection": the
// stored password went to its listener in clear. Now a changed URL, host or
// bind DN needs the password again, the test uses only the form and the
// stored password only for the stored host and account, plain ldap:// needs
// an explicit (red) "insecure", and failures say "could not connect".
func TestDirectoryPasswordNeverToNewHost(t *testing.T) {
	tester := &recordingTester{}
	f := newFixture(t)
	ctx := context.Background()
	m := f.A.Admin
	ck := f.signIn(m)
	path := "/console/schools/" + f.A.School.ID + "/directory"
	f.clock.Advance(30 * time.Second)
	if rec := f.do(req{method: "POST", path: "/console/reauth", cookie: ck, form: url.Values{"password": {m.Password}, "code": {f.code(m)}, "return": {path}}}); rec.Code != http.StatusSeeOther {
		t.Fatalf("re-authentication: %d", rec.Code)
	}
	form := func(kv ...string) url.Values {
		v := url.Values{"url": {"ldaps://ldap.alpha.example.dk"}, "preset": {"openldap"}, "pupil_base": {"ou=elever,dc=alpha"}, "bind_dn": {"cn=elevid,dc=alpha"},
			"page_size": {"500"}, "max_delete_percent": {"10"}, "max_deletions": {"500"}, "interval_hours": {"6"}}
		for i := 0; i+1 < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	if rec := f.do(req{method: "POST", path: path, cookie: ck, form: form("bind_password", "s3cret")}); rec.Code != http.StatusSeeOther {
		t.Fatalf("first save: %d", rec.Code)
	}
	stored := func() school.DirectorySource {
		src, err := f.st.GetDirectorySource(ctx, f.A.School.ID)
		f.must(err)
		return src
	}
	// A new host, a new port or a new bind DN with the password field
	// empty: refused, nothing stored.
	for _, kv := range [][]string{
		{"url", "ldaps://evil.example.net"},
		{"url", "ldaps://ldap.alpha.example.dk:1636"},
		{"bind_dn", "cn=admin,dc=alpha"},
	} {
		rec := f.do(req{method: "POST", path: path, cookie: ck, form: form(kv...)})
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "type the password again") && !strings.Contains(rec.Body.String(), "skriv adgangskoden igen") {
			t.Fatalf("save %v without the password: %d", kv, rec.Code)
		}
		if src := stored(); src.URL != "ldaps://ldap.alpha.example.dk" || src.BindDN != "cn=elevid,dc=alpha" {
			t.Fatalf("stored after a refused save: %s %s", src.URL, src.BindDN)
		}
	}
	// The same host and account keep the stored password.
	if rec := f.do(req{method: "POST", path: path, cookie: ck, form: form("interval_hours", "12")}); rec.Code != http.StatusSeeOther {
		t.Fatalf("save of the same host without the password: %d %s", rec.Code, rec.Body.String())
	}

	// Test connection against a listener of the attacker: the stored
	// password never reaches it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			b := make([]byte, 4096)
			n, _ := c.Read(b)
			got <- string(b[:n])
			c.Close()
		}
	}()
	evil := "ldap://" + ln.Addr().String()
	rec := f.do(req{method: "POST", path: path + "/test", cookie: ck, form: form("url", evil, "insecure", "on")})
	if body := rec.Body.String(); !strings.Contains(body, "type the password again") && !strings.Contains(body, "skriv adgangskoden igen") {
		t.Fatalf("test against a new host without the password: %d %.300s", rec.Code, body)
	}
	select {
	case b := <-got:
		t.Fatalf("the test connected to the new host (sent %q)", b)
	case <-time.After(200 * time.Millisecond):
	}
	// Plain ldap:// without "insecure" is refused, for the test too.
	if rec := f.do(req{method: "POST", path: path + "/test", cookie: ck, form: form("url", evil, "bind_password", "typed")}); !strings.Contains(rec.Body.String(), "unencrypted") && !strings.Contains(rec.Body.String(), "ukrypteret") {
		t.Fatalf("plain ldap:// test without insecure: %.300s", rec.Body.String())
	}
	if rec := f.do(req{method: "POST", path: path, cookie: ck, form: form("url", evil, "bind_password", "typed")}); rec.Code != http.StatusBadRequest {
		t.Fatalf("plain ldap:// save without insecure: %d", rec.Code)
	}
	// A closed port: "could not connect", no port or socket detail.
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	closedAddr := closed.Addr().String()
	closed.Close()
	rec = f.do(req{method: "POST", path: path + "/test", cookie: ck, form: form("url", "ldap://"+closedAddr, "insecure", "on", "bind_password", "typed")})
	body := rec.Body.String()
	if i := strings.Index(body, `id="test-result"`); i >= 0 {
		body = body[i:]
		body = body[:strings.Index(body, "</p>")]
	}
	if (!strings.Contains(body, "Could not connect") && !strings.Contains(body, "Kunne ikke forbinde")) || strings.Contains(body, "refused") ||
		strings.Contains(body, closedAddr) || strings.Contains(body, "dial") {
		t.Fatalf("closed port: %s", body)
	}
	// Saved as insecure: the page shows it in red.
	if rec := f.do(req{method: "POST", path: path, cookie: ck, form: form("url", evil, "insecure", "on", "bind_password", "typed")}); rec.Code != http.StatusSeeOther {
		t.Fatalf("insecure save: %d %s", rec.Code, rec.Body.String())
	}
	if rec := f.do(req{method: "GET", path: path, cookie: ck}); !strings.Contains(rec.Body.String(), `id="insecure-warning"`) {
		t.Fatal("the insecure source is not shown in red")
	}

	// With a tester: the stored password is used for the stored host and
	// account only.
	g := newFixture(t, func(o *console.Options) { o.Tester = tester })
	gm := g.A.Admin
	gck := g.signIn(gm)
	gpath := "/console/schools/" + g.A.School.ID + "/directory"
	g.clock.Advance(30 * time.Second)
	g.do(req{method: "POST", path: "/console/reauth", cookie: gck, form: url.Values{"password": {gm.Password}, "code": {g.code(gm)}, "return": {gpath}}})
	if rec := g.do(req{method: "POST", path: gpath, cookie: gck, form: form("bind_password", "s3cret")}); rec.Code != http.StatusSeeOther {
		t.Fatalf("save: %d", rec.Code)
	}
	g.do(req{method: "POST", path: gpath + "/test", cookie: gck, form: form()})
	g.do(req{method: "POST", path: gpath + "/test", cookie: gck, form: form("url", "ldaps://evil.example.net")})
	g.do(req{method: "POST", path: gpath + "/test", cookie: gck, form: form("url", "ldaps://evil.example.net", "bind_password", "typed")})
	want := []string{"ldaps://ldap.alpha.example.dk|cn=elevid,dc=alpha|s3cret", "ldaps://evil.example.net|cn=elevid,dc=alpha|typed"}
	if strings.Join(tester.calls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("tester calls:\n%s\nwant:\n%s", strings.Join(tester.calls, "\n"), strings.Join(want, "\n"))
	}
}
