package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// freshPostgres returns a DSN of a fresh schema in ELEVID_TEST_POSTGRES
// (dropped at the end of t), or skips t.
func freshPostgres(t *testing.T) string {
	t.Helper()
	return testenv.PostgresSchema(t, "e2e")
}

// TestInvalidUTF8 (issue 15, item 6): a staff invite named `bad\xff\xfe`
// gets a 400 with a clear message, not a 500 (PostgreSQL refuses such
// text), and so does invalid UTF-8 in a query, a form and a JSON body
// anywhere; nothing is written.
func TestInvalidUTF8(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			var e *e2e
			if db == "postgres" {
				e = newE2EOn(t, freshPostgres(t), false)
			} else {
				e = newE2E(t)
			}
			ctx := context.Background()
			sch := mustOK[school.School](t)(e.a.store.CreateSchool(ctx, school.School{Code: "utf", Name: "UTF Skole", Domain: "utf.example.dk"}))
			admin := e.staffMember(sch.ID, "admin.utf", "Admin", school.RoleSchoolAdmin, nil)
			c := e.client()
			c.consoleSignIn(admin)
			status, body, _ := c.postForm("/console/schools/"+sch.ID+"/staff", url.Values{
				"username": {"bad.name"}, "name": {"bad\xff\xfe"}, "role": {"teacher"}})
			if status != http.StatusBadRequest || !strings.Contains(body, "not valid text") {
				t.Fatalf("invite with invalid UTF-8: %d\n%.600s", status, body)
			}
			if _, err := e.a.store.StaffByUsername(ctx, "bad.name"); err == nil {
				t.Fatal("the invite was stored")
			}
			// The same name, valid, works: nothing else was in the way.
			status, body, _ = c.postForm("/console/schools/"+sch.ID+"/staff", url.Values{
				"username": {"good.name"}, "name": {"Bøje Ærø"}, "role": {"teacher"}})
			if status != http.StatusOK {
				t.Fatalf("valid invite: %d\n%.600s", status, body)
			}
			if status, body, _ := c.get("/console?x=%ff"); status != http.StatusBadRequest || !strings.Contains(body, "not valid text") {
				t.Fatalf("query with invalid UTF-8: %d", status)
			}
			if status, body, _ := c.do(http.MethodPost, "/login/begin", "application/json", strings.NewReader("{\"x\":\"\xff\"}")); status != http.StatusBadRequest ||
				!strings.Contains(body, "not valid text") {
				t.Fatalf("JSON with invalid UTF-8: %d %s", status, body)
			}
		})
	}
}

// TestAuditAnchorCommand (issue 15, item 9): `elevid admin audit anchor`
// prints the chain heads; `verify --anchor` passes on the intact chain and
// fails once the newest entries were cut off (head moved back too).
func TestAuditAnchorCommand(t *testing.T) {
	ctx := context.Background()
	db := filepath.Join(t.TempDir(), "elevid.db")
	env := func(k string) string {
		if k == "ELEVID_DATABASE" {
			return db
		}
		return ""
	}
	cli := func(args ...string) (string, error) {
		var out, errb bytes.Buffer
		err := run(ctx, append([]string{"admin"}, args...), &out, &errb, env)
		return out.String(), err
	}
	for _, c := range []string{"ank", "bnk"} {
		if _, err := cli("create-school", "--code", c, "--name", "Skole "+c, "--domain", c+".example.dk"); err != nil {
			t.Fatal(err)
		}
	}
	out, err := cli("audit", "anchor")
	if err != nil {
		t.Fatal(err)
	}
	var inst string
	for line := range strings.Lines(out) {
		if strings.HasPrefix(line, "instance:") {
			inst = strings.TrimSpace(line)
		}
	}
	if !regexp.MustCompile(`^instance:[0-9]+:[0-9a-f]{64}$`).MatchString(inst) {
		t.Fatalf("anchor output:\n%s", out)
	}
	if out, err := cli("audit", "verify", "--school", "instance", "--anchor", inst); err != nil || !strings.Contains(out, "1 anchors checked") {
		t.Fatalf("verify with the anchor: %v %s", err, out)
	}
	// A third school appends to the instance chain; then the newest
	// entry is cut off and the head moved back: consistent without the
	// anchor, caught with it.
	if _, err := cli("create-school", "--code", "cnk", "--name", "Skole C", "--domain", "cnk.example.dk"); err != nil {
		t.Fatal(err)
	}
	seq := strings.Split(inst, ":")[1]
	st, err := sqlite.Open(ctx, db, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`DELETE FROM audit_log WHERE school_id = '' AND seq >= ` + seq,
		`UPDATE audit_heads SET seq = ` + seq + ` - 1, hash = (SELECT hash FROM audit_log WHERE school_id = '' AND seq = ` + seq + ` - 1) WHERE school_id = ''`,
	} {
		if _, err := st.DB().ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if _, err := cli("audit", "verify", "--school", "instance"); err != nil {
		t.Fatalf("the consistent truncation without the anchor: %v", err)
	}
	if _, err := cli("audit", "verify", "--school", "instance", "--anchor", inst); !errors.Is(err, school.ErrChainBroken) {
		t.Fatalf("truncation with the anchor: %v", err)
	}
}
