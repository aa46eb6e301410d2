package migrations

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/pressly/goose/v3"
)

// Migration 35 moves the staff members' passkeys into the pupils'
// credentials table, with an owner kind, keeping every field; its Down
// puts them back in a table of their own. Both ways lose nothing.
func TestCredentialMigration(t *testing.T) { onBothDialects(t, testCredentialMigration) }

func testCredentialMigration(t *testing.T, db *sql.DB, p *goose.Provider) {
	ctx := context.Background()
	if _, err := p.UpTo(ctx, 34); err != nil {
		t.Fatal(err)
	}
	exec := func(q string, args ...any) error {
		_, err := db.ExecContext(ctx, q, args...)
		return err
	}
	must := func(q string, args ...any) {
		t.Helper()
		if err := exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	must(`INSERT INTO schools (id, code, name, domain, created_at) VALUES ('s1', 'one', 'Skole', 'one.dk', 1)`)
	must(`INSERT INTO pupils (id, school_id, given_name, status, created_at, updated_at) VALUES ('p1', 's1', 'Ida', 'active', 1, 1)`)
	must(`INSERT INTO staff (id, school_id, username, role, created_at) VALUES ('t1', 's1', 'tove', 'teacher', 1)`)
	must(`INSERT INTO staff (id, username, role, created_at) VALUES ('o1', 'otto', 'operator', 1)`)
	must(`INSERT INTO credentials (id, pupil_id, school_id, public_key, attestation_format, aaguid, sign_count, backup_eligible, backup_state,
		clone_warning, transports, label, created_at, last_used_at, revoked_at) VALUES
		($1, 'p1', 's1', $2, 'none', $3, 4, true, true, false, 'internal,hybrid', 'iPad', 10, 11, 0),
		($4, 'p1', 's1', $2, 'packed', NULL, 9, false, false, true, '', 'Gammel', 12, 13, 14)`,
		[]byte("pk-1"), []byte("key-p"), []byte("aaguid-16-bytes!"), []byte("pk-2"))
	must(`INSERT INTO staff_credentials (id, staff_id, public_key, attestation_format, aaguid, sign_count, backup_eligible, backup_state,
		clone_warning, transports, label, created_at, last_used_at) VALUES
		($1, 't1', $2, 'none', NULL, 3, true, false, true, 'usb', 'Laptop', 20, 21),
		($3, 'o1', $2, 'none', $4, 0, false, false, false, '', 'Nøgle', 22, 0)`,
		[]byte("sk-1"), []byte("key-s"), []byte("sk-2"), []byte("aaguid-16-bytes?"))

	const fields = `public_key, attestation_format, COALESCE(aaguid, ''), sign_count, backup_eligible, backup_state, clone_warning, transports, label, created_at, last_used_at`
	rows := func(q string) string {
		t.Helper()
		r, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer r.Close()
		cols, _ := r.Columns()
		var out []string
		for r.Next() {
			vals := make([]any, len(cols))
			for i := range vals {
				vals[i] = new(sql.RawBytes)
			}
			if err := r.Scan(vals...); err != nil {
				t.Fatal(err)
			}
			var row []string
			for _, v := range vals {
				row = append(row, string(*v.(*sql.RawBytes)))
			}
			out = append(out, strings.Join(row, "|"))
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, "\n")
	}
	// Booleans read as 1/0 in both dialects (twice: neighbours share a "|").
	norm := func(s string) string {
		r := strings.NewReplacer("|true|", "|1|", "|false|", "|0|", "|t|", "|1|", "|f|", "|0|")
		return r.Replace(r.Replace(s))
	}
	pupilsBefore := func() string {
		return norm(rows(`SELECT id, pupil_id, school_id, ` + fields + `, revoked_at FROM credentials ORDER BY id`))
	}
	staffBefore := func() string {
		return norm(rows(`SELECT id, staff_id, ` + fields + ` FROM staff_credentials ORDER BY id`))
	}
	wantPupils := "pk-1|p1|s1|key-p|none|aaguid-16-bytes!|4|1|1|0|internal,hybrid|iPad|10|11|0\n" +
		"pk-2|p1|s1|key-p|packed||9|0|0|1||Gammel|12|13|14"
	wantStaff := "sk-1|t1|key-s|none||3|1|0|1|usb|Laptop|20|21\n" +
		"sk-2|o1|key-s|none|aaguid-16-bytes?|0|0|0|0||Nøgle|22|0"
	if got := pupilsBefore(); got != wantPupils {
		t.Fatalf("pupils' credentials before:\n%s", got)
	}
	if got := staffBefore(); got != wantStaff {
		t.Fatalf("staff credentials before:\n%s", got)
	}

	if _, err := p.UpTo(ctx, 35); err != nil {
		t.Fatal(err)
	}
	after := func() string {
		return norm(rows(`SELECT id, owner_kind, COALESCE(pupil_id, '-'), COALESCE(staff_id, '-'), COALESCE(school_id, '-'), ` + fields + `, revoked_at FROM credentials ORDER BY id`))
	}
	const wantUp = "pk-1|pupil|p1|-|s1|key-p|none|aaguid-16-bytes!|4|1|1|0|internal,hybrid|iPad|10|11|0\n" +
		"pk-2|pupil|p1|-|s1|key-p|packed||9|0|0|1||Gammel|12|13|14\n" +
		"sk-1|staff|-|t1|-|key-s|none||3|1|0|1|usb|Laptop|20|21|0\n" +
		"sk-2|staff|-|o1|-|key-s|none|aaguid-16-bytes?|0|0|0|0||Nøgle|22|0|0"
	if up := after(); up != wantUp {
		t.Fatalf("credentials after Up:\n%s\nwant\n%s", up, wantUp)
	}
	if err := exec(`SELECT 1 FROM staff_credentials`); err == nil {
		t.Fatal("staff_credentials is still there after Up")
	}
	// The owner's column must match the kind: no staff passkey with a
	// school or a pupil, no pupil passkey without a school.
	for _, q := range []string{
		`INSERT INTO credentials (id, owner_kind, staff_id, school_id, public_key, created_at) VALUES ($1, 'staff', 't1', 's1', $1, 1)`,
		`INSERT INTO credentials (id, owner_kind, staff_id, pupil_id, public_key, created_at) VALUES ($1, 'staff', 't1', 'p1', $1, 1)`,
		`INSERT INTO credentials (id, owner_kind, pupil_id, public_key, created_at) VALUES ($1, 'pupil', 'p1', $1, 1)`,
		`INSERT INTO credentials (id, owner_kind, staff_id, public_key, created_at) VALUES ($1, 'pupil', 't1', $1, 1)`,
	} {
		if err := exec(q, []byte("bad")); err == nil {
			t.Fatalf("accepted: %s", q)
		}
	}

	if _, err := p.DownTo(ctx, 34); err != nil {
		t.Fatal(err)
	}
	if got := pupilsBefore(); got != wantPupils {
		t.Fatalf("pupils' credentials after Down:\n%s\nwant\n%s", got, wantPupils)
	}
	if got := staffBefore(); got != wantStaff {
		t.Fatalf("staff credentials after Down:\n%s\nwant\n%s", got, wantStaff)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if again := after(); again != wantUp {
		t.Fatalf("credentials after Down and Up:\n%s\nwant\n%s", again, wantUp)
	}
}
