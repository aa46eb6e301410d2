// Package storetest is the conformance suite every school.Store
// implementation runs: school/sqlite and school/postgres call Run from
// their tests. It is black-box: it uses only the Store interface, plus a
// raw SQL hook for tamper tests and a settable clock for expiry.
package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

// Clock is a settable clock for expiry tests; safe for concurrent use.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at a fixed, microsecond-truncated instant.
func NewClock() *Clock {
	return &Clock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
}

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Harness is one fresh, migrated, empty store for one test.
type Harness struct {
	Store school.Store
	// Exec runs raw SQL ($n placeholders) against the store's database,
	// bypassing the Store; tamper tests use it.
	Exec  func(ctx context.Context, query string, args ...any) error
	Clock *Clock
	// AuditKeys are the audit keys the store uses (its
	// sqlstore.Options.AuditKeys reads them); tests change them.
	AuditKeys *AuditKeyring
}

// AuditKeyring holds the audit keys of a harness's store.
type AuditKeyring struct {
	p atomic.Pointer[school.AuditKeys]
}

// TestAuditKeys is the key a harness's store starts with.
var TestAuditKeys = school.AuditKeys{{ID: "test1", Key: []byte("storetest audit key 1 0123456789")}}

// NewAuditKeyring returns a keyring holding TestAuditKeys.
func NewAuditKeyring() *AuditKeyring {
	k := &AuditKeyring{}
	k.Set(TestAuditKeys)
	return k
}

// Keys returns the current keys (for sqlstore.Options.AuditKeys).
func (k *AuditKeyring) Keys() school.AuditKeys { return *k.p.Load() }

// Set replaces the keys.
func (k *AuditKeyring) Set(ks school.AuditKeys) { k.p.Store(&ks) }

// Factory returns a fresh Harness whose store uses clock; it registers its
// own cleanup with t.
type Factory func(t *testing.T, clock *Clock) Harness

// Run runs the whole conformance suite against stores made by f.
func Run(t *testing.T, f Factory) {
	for _, tc := range suites {
		t.Run(tc.name, func(t *testing.T) {
			tc.run(t, f(t, NewClock()))
		})
	}
}

// suites lists the parts of the suite; each capability adds its own.
var suites = []struct {
	name string
	run  func(t *testing.T, h Harness)
}{
	{"Schools", testSchools},
	{"Classes", testClasses},
	{"Pupils", testPupils},
	{"Guardians", testGuardians},
	{"Staff", testStaff},
	{"Platforms", testPlatforms},
	{"Consent", testConsent},
	{"ConsentAttributes", testConsentAttributes},
	{"ReleaseInputs", testReleaseInputs},
	{"GuardianLinks", testGuardianLinks},
	{"GuardianSessions", testGuardianSessions},
	{"GuardianVerifications", testGuardianVerifications},
	{"Outbox", testOutbox},
	{"Audit", testAudit},
	{"AuditKeyed", testAuditKeyed},
	{"Settings", testSettings},
	{"Locks", testLocks},
	{"SAML", testSAML},
	{"OIDC", testOIDC},
	{"LogoutQueue", testLogoutQueue},
	{"EndAccess", testEndAccess},
	{"Transactions", testTransactions},
	{"Access", testAccess},
	{"Retention", testRetention},
	{"Console", testConsole},
	{"Authn", testAuthn},
	{"Directory", testDirectory},
	{"StaffPasskeys", testStaffPasskeys},
	{"PasskeyKindsApart", testPasskeyKindsApart},
}
