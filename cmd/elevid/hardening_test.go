package main

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/elevid/elevid/internal/testenv"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/postgres"
	"github.com/elevid/elevid/school/sqlstore"
)

// freshPostgres returns a DSN of a fresh schema in ELEVID_TEST_POSTGRES
// (dropped at the end of t), or skips t.
func freshPostgres(t *testing.T) string {
	t.Helper()
	dsn := testenv.Postgres(t)
	ctx := context.Background()
	schema := "e2e_" + school.NewID()[:12]
	admin, err := postgres.Open(ctx, dsn, sqlstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Pool().Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = admin.Pool().Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
		admin.Close()
	})
	sep := "?"
	if strings.Contains(dsn, "?") {
		sep = "&"
	}
	return dsn + sep + "search_path=" + schema
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
				e = newE2EOn(t, freshPostgres(t))
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
