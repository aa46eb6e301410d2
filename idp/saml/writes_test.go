package saml_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/elevid/elevid/internal/idptest"
	"github.com/elevid/elevid/school/sqlstore"
)

// TestSAMLSSOStoreWrites counts what an SP-initiated answer (the
// AuthnRequest at /saml/sso, then /saml/resume with a session) asks of
// the database: the request travels sealed in the resume URL, and the
// answer's records (the request id's single use, the SP session, the
// release log entry) are written in one transaction.
func TestSAMLSSOStoreWrites(t *testing.T) {
	counter := &sqlstore.Counter{}
	counter.Track()
	h := idptest.NewSAMLHarnessWith(t, sqlstore.Options{Counter: counter})
	sp := h.NewSP(t, idptest.SPOptions{Consent: true})
	sid := h.Sessions.Login(h.Pupil.ID)
	redirect := func() (string, string) { return sp.RedirectRequest(t, h.Server.URL+"/saml/sso", "relay") }
	// Warm the SP cache and the signing key as a running server has them.
	warm, _ := redirect()
	resume(h, t, h.Get(t, warm, sid), sid)
	u, id := redirect()

	before := snapshot(counter)
	resp := h.Get(t, u, sid)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sso: %d", resp.StatusCode)
	}
	atSSO := snapshot(counter).minus(before)
	action, form := resume(h, t, resp, sid)
	total := snapshot(counter).minus(before)
	if _, err := sp.ACS(t, action, form, id); err != nil {
		t.Fatalf("SP rejected the response: %v", samlErr(err))
	}
	for q, n := range total.queries {
		t.Logf("%2d %.110s", n, q)
	}
	if atSSO.writes != 0 || atSSO.tx != 0 {
		t.Errorf("/saml/sso wrote %d statements in %d transactions, want nothing", atSSO.writes, atSSO.tx)
	}
	// Before the flow was sealed: 5 commits (request id, flow row, flow
	// used, SP session, release log entry) and 8 statements outside them.
	if total.tx != 1 {
		t.Errorf("the answer took %d transactions, want 1", total.tx)
	}
	for q, n := range total.queries {
		if !strings.HasPrefix(q, "[tx] ") && isWrite(q) {
			t.Errorf("%d× a write outside the answer's transaction: %.80s", n, q)
		}
	}
	// Reads: the platform by entity id (crewjam's and ElevID's lookup) and
	// by id, the release inputs, and the harness's session.
	if total.stmts > 5 {
		t.Errorf("%d statements outside the transaction, want at most 5", total.stmts)
	}
}

func isWrite(q string) bool {
	s := strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(q, "[tx] ")))
	return strings.HasPrefix(s, "INSERT") || strings.HasPrefix(s, "UPDATE") || strings.HasPrefix(s, "DELETE")
}

type dbCount struct {
	tx, stmts, inTx, writes int64
	queries                 map[string]int64
}

func (a dbCount) minus(b dbCount) dbCount {
	d := dbCount{a.tx - b.tx, a.stmts - b.stmts, a.inTx - b.inTx, a.writes - b.writes, map[string]int64{}}
	for q, n := range a.queries {
		if n > b.queries[q] {
			d.queries[q] = n - b.queries[q]
		}
	}
	return d
}

func snapshot(c *sqlstore.Counter) dbCount {
	d := dbCount{tx: c.Transactions.Load(), stmts: c.Statements.Load(), inTx: c.InTx.Load(), queries: map[string]int64{}}
	for _, q := range c.Top(1 << 20) {
		d.queries[q.Query] = q.N
		if isWrite(q.Query) {
			d.writes += q.N
		}
	}
	return d
}
