package rostersync_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

const base = "dc=school,dc=test"

// roster describes a generated directory.
type roster struct {
	preset                            string
	pupils, guardians, classes, staff int
}

func uuidFor(kind, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", kind, i) }

const (
	kindPupil = iota + 1
	kindGuardian
	kindClass
	kindStaff
)

func pupilDN(i int) string    { return fmt.Sprintf("uid=p%d,ou=pupils,%s", i, base) }
func guardianDN(i int) string { return fmt.Sprintf("uid=g%d,ou=guardians,%s", i, base) }
func classDN(i int) string    { return fmt.Sprintf("cn=class-%d,ou=classes,%s", i, base) }
func staffDN(i int) string    { return fmt.Sprintf("uid=t%d,ou=staff,%s", i, base) }

// pupilGuardians are the guardian indexes of pupil i.
func (r roster) pupilGuardians(i int) []int {
	if r.guardians == 0 {
		return nil
	}
	g := []int{i % r.guardians}
	if i%2 == 0 && r.guardians > 1 {
		g = append(g, (i+1)%r.guardians)
	}
	return g
}

func (r roster) className(c int) string { return fmt.Sprintf("%d%c", 6+c/26%4, 'A'+rune(c%26)) }

// idAttrs returns the id attribute of a generated entry in the preset's
// form (entryUUID text or objectGUID bytes).
func (r roster) idAttrs(e *entry, kind, i int) {
	id := uuidFor(kind, i)
	if r.preset == school.PresetAD {
		b, err := rostersync.EncodeGUID(id)
		if err != nil {
			panic(err)
		}
		e.set("objectGUID", string(b))
		return
	}
	e.set("entryUUID", id)
}

func (r roster) stamp(e *entry, t time.Time) {
	e.set("modifyTimestamp", t.UTC().Format("20060102150405Z"))
	e.set("whenChanged", t.UTC().Format("20060102150405.0Z"))
}

func (r roster) person(e *entry) {
	if r.preset == school.PresetAD {
		e.set("objectClass", "top", "person", "organizationalPerson", "user")
		e.set("objectCategory", "person")
	} else {
		e.set("objectClass", "top", "person", "organizationalPerson", "inetOrgPerson")
	}
}

func (r roster) pupil(i int, t time.Time) *entry {
	e := &entry{DN: pupilDN(i), Attrs: map[string][]string{}}
	r.person(e)
	r.idAttrs(e, kindPupil, i)
	e.set("uid", fmt.Sprintf("p%d", i))
	e.set("givenName", fmt.Sprintf("Pupil%d", i))
	e.set("sn", fmt.Sprintf("Family%d", i))
	birth := time.Date(2011+i%4, time.Month(1+i%12), 1+i%28, 0, 0, 0, 0, time.UTC)
	if r.preset == school.PresetAD {
		e.set("msDS-cloudExtensionAttribute1", birth.Format(time.DateOnly))
	} else {
		e.set("schacDateOfBirth", birth.Format("20060102"))
	}
	var gs []string
	for _, g := range r.pupilGuardians(i) {
		gs = append(gs, guardianDN(g))
	}
	if len(gs) > 0 {
		e.set("seeAlso", gs...)
	}
	r.stamp(e, t)
	return e
}

func (r roster) guardian(g int, t time.Time) *entry {
	e := &entry{DN: guardianDN(g), Attrs: map[string][]string{}}
	r.person(e)
	r.idAttrs(e, kindGuardian, g)
	name := fmt.Sprintf("Guardian %d", g)
	e.set("cn", name)
	e.set("displayName", name)
	e.set("sn", "G")
	e.set("mail", fmt.Sprintf("g%d@example.test", g))
	r.stamp(e, t)
	return e
}

func (r roster) staffEntry(s int, t time.Time) *entry {
	e := &entry{DN: staffDN(s), Attrs: map[string][]string{}}
	r.person(e)
	r.idAttrs(e, kindStaff, s)
	e.set("uid", fmt.Sprintf("t%d", s))
	e.set("userPrincipalName", fmt.Sprintf("t%d@school.test", s))
	e.set("cn", fmt.Sprintf("Teacher %d", s))
	e.set("displayName", fmt.Sprintf("Teacher %d", s))
	e.set("sn", "T")
	e.set("mail", fmt.Sprintf("t%d@school.test", s))
	if s == 0 {
		e.set("employeeType", "admin")
	} else {
		e.set("employeeType", "teacher")
	}
	r.stamp(e, t)
	return e
}

func (r roster) class(c int, t time.Time) *entry {
	e := &entry{DN: classDN(c), Attrs: map[string][]string{}}
	if r.preset == school.PresetAD {
		e.set("objectClass", "top", "group")
	} else {
		e.set("objectClass", "top", "groupOfNames")
	}
	r.idAttrs(e, kindClass, c)
	e.set("cn", r.className(c))
	var members []string
	for i := c; i < r.pupils; i += r.classes {
		members = append(members, pupilDN(i))
	}
	if r.staff > 0 {
		members = append(members, staffDN(c%r.staff))
	}
	e.set("member", members...)
	r.stamp(e, t)
	return e
}

// entries generates the whole directory.
func (r roster) entries(t time.Time) []*entry {
	var out []*entry
	for c := range r.classes {
		out = append(out, r.class(c, t))
	}
	for g := range r.guardians {
		out = append(out, r.guardian(g, t))
	}
	for s := range r.staff {
		out = append(out, r.staffEntry(s, t))
	}
	for i := range r.pupils {
		out = append(out, r.pupil(i, t))
	}
	return out
}

// env is one test: a store, a fake directory, a school with a source.
type env struct {
	t      testing.TB
	ctx    context.Context
	st     school.Store
	clock  *testClock
	dir    *fakeDir
	r      roster
	sch    school.School
	sealer *school.Sealer
	syncer *rostersync.Syncer
	hookMu sync.Mutex
	hooked []string
	// hookErr, when set, is returned by the quarantine hook.
	hookErr error
}

func testSealer(t testing.TB) *school.Sealer {
	s, err := school.NewSealer([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openSQLite(t testing.TB, clock *testClock) school.Store {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "elevid.db"), sqlstore.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return st
}

func quietLog() *slog.Logger {
	if os.Getenv("ELEVID_TEST_VERBOSE") != "" {
		return slog.Default()
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// newEnv builds a directory from r and a school whose source points at it.
func newEnv(t testing.TB, r roster, st school.Store, clock *testClock) *env {
	t.Helper()
	ctx := context.Background()
	if clock == nil {
		clock = newClock()
	}
	if st == nil {
		st = openSQLite(t, clock)
	}
	e := &env{t: t, ctx: ctx, st: st, clock: clock, r: r, sealer: testSealer(t)}
	e.dir = newFakeDir(t)
	e.dir.add(r.entries(clock.Now().Add(-time.Hour))...)
	sch, err := st.CreateSchool(ctx, school.School{Code: "skole", Name: "Skolen", Domain: "school.test"})
	if err != nil {
		t.Fatal(err)
	}
	e.sch = sch
	src := school.DirectorySource{
		SchoolID: sch.ID, URL: e.dir.URL(), Insecure: true, BindDN: e.dir.bindDN,
		BindPassword: e.sealer.Seal([]byte(e.dir.bindPW), "ldap:"+sch.ID),
		PupilBase:    "ou=pupils," + base, StaffBase: "ou=staff," + base, ClassBase: "ou=classes," + base, GuardianBase: "ou=guardians," + base,
		Preset: r.preset, PageSize: 25,
	}.WithDefaults()
	if _, err := st.PutDirectorySource(ctx, src); err != nil {
		t.Fatal(err)
	}
	e.syncer = rostersync.New(rostersync.Options{Store: st, Sealer: e.sealer, Log: quietLog(), Now: clock.Now,
		OnQuarantine: func(ctx context.Context, q school.Queries, id string) error {
			// The hook runs inside the transaction: the pupil is already
			// quarantined as seen through q.
			p, err := q.GetPupil(ctx, id)
			if err != nil {
				return err
			}
			if p.Status != school.PupilQuarantined {
				return fmt.Errorf("hook saw status %s", p.Status)
			}
			e.hookMu.Lock()
			defer e.hookMu.Unlock()
			if e.hookErr != nil {
				return e.hookErr
			}
			e.hooked = append(e.hooked, id)
			return nil
		}})
	return e
}

// source changes the school's source.
func (e *env) source(fn func(*school.DirectorySource)) {
	e.t.Helper()
	src, err := e.st.GetDirectorySource(e.ctx, e.sch.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	fn(&src)
	if _, err := e.st.PutDirectorySource(e.ctx, src); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) run(ro rostersync.RunOptions) (rostersync.Result, error) {
	return e.syncer.Run(e.ctx, e.sch.ID, ro)
}

func (e *env) mustRun(ro rostersync.RunOptions) rostersync.Result {
	e.t.Helper()
	res, err := e.run(ro)
	if err != nil {
		e.t.Fatalf("run: %v (run %+v)", err, res.Run)
	}
	return res
}

func (e *env) pupil(i int) school.Pupil {
	e.t.Helper()
	p, err := e.st.PupilByExternalID(e.ctx, e.sch.ID, uuidFor(kindPupil, i))
	if err != nil {
		e.t.Fatalf("pupil %d: %v", i, err)
	}
	return p
}

func (e *env) pupils(status school.PupilStatus) []school.Pupil {
	e.t.Helper()
	ps, err := e.st.ListPupils(e.ctx, school.PupilFilter{SchoolID: e.sch.ID, Status: status})
	if err != nil {
		e.t.Fatal(err)
	}
	return ps
}

// snapshot is a comparable dump of the school's roster in the store.
func (e *env) snapshot() string {
	e.t.Helper()
	var b strings.Builder
	for _, p := range e.pupils("") {
		fmt.Fprintf(&b, "%s %s %s %s %s %v %v %s\n", p.ID, p.ExternalID, p.Name(), p.BirthDate.Format(time.DateOnly), p.Status, p.ClassIDs, p.GuardianIDs, p.UpdatedAt)
	}
	gs, _ := e.st.ListGuardians(e.ctx, e.sch.ID)
	for _, g := range gs {
		fmt.Fprintf(&b, "%+v\n", g)
	}
	cs, _ := e.st.ListClasses(e.ctx, e.sch.ID)
	for _, c := range cs {
		fmt.Fprintf(&b, "%+v\n", c)
	}
	ss, _ := e.st.ListStaff(e.ctx, e.sch.ID)
	for _, s := range ss {
		fmt.Fprintf(&b, "%+v\n", s)
	}
	audit, _ := e.st.ListAudit(e.ctx, school.AuditFilter{SchoolID: e.sch.ID, Limit: 1})
	fmt.Fprintf(&b, "audit %v\n", audit)
	return b.String()
}

// testClock is a settable clock, safe for concurrent use.
type testClock struct {
	mu   sync.Mutex
	now  time.Time
	real bool // Now is the wall clock (tests across processes)
}

func newClock() *testClock { return &testClock{now: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)} }

func (c *testClock) Now() time.Time {
	if c.real {
		return time.Now()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
