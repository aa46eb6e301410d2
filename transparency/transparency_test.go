package transparency_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
	"github.com/elevid/elevid/school/storetest"
	"github.com/elevid/elevid/transparency"
)

type fixture struct {
	st       *sqlite.Store
	clock    *storetest.Clock
	seed     storetest.Seed
	sibling  school.Pupil // a pupil of another guardian
	teacher  school.Staff
	operator school.Staff
}

func newFixture(t *testing.T) fixture {
	ctx := context.Background()
	clock := storetest.NewClock()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"), sqlstore.Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	f := fixture{st: st, clock: clock, seed: storetest.NewSeed(t, st)}
	f.teacher, _ = st.CreateStaff(ctx, school.Staff{SchoolID: f.seed.School.ID, Username: "anna", Name: "Anna Jensen", Role: school.RoleTeacher})
	f.operator, _ = st.CreateStaff(ctx, school.Staff{Username: "op", Name: "Olga Operator", Role: school.RoleOperator})
	other, _ := st.CreateGuardian(ctx, school.Guardian{SchoolID: f.seed.School.ID, Name: "Anden", Email: "anden@example.dk"})
	f.sibling, err = st.CreatePupil(ctx, school.Pupil{SchoolID: f.seed.School.ID, GivenName: "Bo", GuardianIDs: []string{other.ID}})
	if err != nil {
		t.Fatal(err)
	}
	// A teacher views the pupil and resets passkeys; an operator looks; a
	// platform receives name and class.
	rec := func(e school.AccessEntry) {
		e.SchoolID = f.seed.School.ID
		if err := st.RecordAccess(ctx, e); err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Minute)
	}
	rec(school.AccessEntry{PupilID: f.seed.Pupil.ID, StaffID: f.teacher.ID, StaffName: "Anna Jensen", Role: school.RoleTeacher, Action: "pupil.view"})
	rec(school.AccessEntry{PupilID: f.seed.Pupil.ID, ClassID: f.seed.Class.ID, StaffID: f.teacher.ID, StaffName: "Anna Jensen", Role: school.RoleTeacher,
		Action: "passkey.reset", Purpose: "checked in person"})
	rec(school.AccessEntry{PupilID: f.seed.Pupil.ID, StaffID: f.operator.ID, StaffName: "Olga Operator", Role: school.RoleOperator, Action: "pupil.view"})
	if _, err := st.AddRelease(ctx, school.Release{PupilID: f.seed.Pupil.ID, PlatformID: f.seed.Platform.ID, PlatformName: "MatematikFessor",
		Protocol: school.ProtocolOIDC, Via: "id_token", Claims: []string{"sub", "given_name", "groups"}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestTimeline(t *testing.T) {
	f := newFixture(t)
	site := webtest.NewSite(t)
	events, err := transparency.Timeline(context.Background(), f.st, site, "en", f.seed.Pupil.ID)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, e := range events {
		texts = append(texts, e.Text)
	}
	want := []string{
		"Platform MatematikFessor received name and class",
		"ElevID operator viewed the pupil's details",
		"Teacher Anna Jensen (7A) reset the passkeys – purpose: checked in person",
		"Teacher Anna Jensen viewed the pupil's details",
	}
	if strings.Join(texts, "\n") != strings.Join(want, "\n") {
		t.Fatalf("timeline =\n%s\nwant\n%s", strings.Join(texts, "\n"), strings.Join(want, "\n"))
	}
	da, _ := transparency.Timeline(context.Background(), f.st, site, "da", f.seed.Pupil.ID)
	if da[2].Text != "Lærer Anna Jensen (7A) nulstillede adgangsnøglerne – formål: checked in person" {
		t.Fatalf("Danish = %q", da[2].Text)
	}
	if got := site.FormatTime("da", time.Date(2026, 3, 3, 9, 14, 0, 0, time.UTC)); got != "3. mar. 2026 kl. 10.14" {
		t.Fatalf("FormatTime = %q", got)
	}
}

func TestExportHasEverythingAndNoSecrets(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	st := f.st
	pid := f.seed.Pupil.ID
	// A passkey and a session, whose secrets must not appear.
	cred, err := st.AddCredential(ctx, school.Credential{ID: []byte("cred-id-secretish"), Owner: school.PupilOwner(pid), SchoolID: f.seed.School.ID,
		PublicKey: []byte("PUBLIC-KEY-MATERIAL"), Label: "Skolens iPad", BackupEligible: true})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := st.CreateSession(ctx, school.Session{Kind: school.SessionPupil, SubjectID: pid, SchoolID: f.seed.School.ID,
		ExpiresAt: f.clock.Now().Add(time.Hour), IdleTimeout: time.Hour, AuthTime: f.clock.Now(), ACR: "urn:elevid:acr:passkey-uv", CredentialID: cred.ID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.SetConsent(ctx, school.Consent{PupilID: pid, GuardianID: f.seed.Guardian.ID, PlatformID: f.seed.Platform.ID, Decision: school.DecisionGranted, DecidedAt: f.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AppendAudit(ctx, school.AuditEntry{SchoolID: f.seed.School.ID, ActorID: f.teacher.ID, ActorRole: "teacher", Action: "passkey.reset", SubjectID: pid}); err != nil {
		t.Fatal(err)
	}
	x, err := transparency.BuildExport(ctx, st, pid, f.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(x)
	doc := string(b)
	if x.Pupil.GivenName != "Ida" || x.School.Code != "s1" || len(x.Classes) != 1 || x.Classes[0].Name != "7A" || len(x.Guardians) != 1 ||
		len(x.Consents) != 1 || x.Consents[0].Platform != "MatematikFessor" || len(x.Passkeys) != 1 || x.Passkeys[0].Label != "Skolens iPad" ||
		len(x.Sessions) != 1 || x.Sessions[0].Ref != sess.Ref || len(x.Releases) != 1 || len(x.AccessLog) != 3 || len(x.Audit) != 1 || x.Pupil.BirthDate != "2012-05-17" {
		t.Fatalf("export incomplete: %s", doc)
	}
	for _, secret := range []string{"PUBLIC-KEY-MATERIAL", "cred-id-secretish", sess.ID, "hash"} {
		if strings.Contains(doc, secret) || strings.Contains(doc, jsonBytes(secret)) {
			t.Fatalf("export contains %q", secret)
		}
	}
}

func jsonBytes(s string) string { b, _ := json.Marshal([]byte(s)); return strings.Trim(string(b), `"`) }

type allow map[string]string // pupil id → viewer

func (a allow) MayView(r *http.Request, pupilID string) (string, bool) {
	v := r.Header.Get("X-Viewer")
	return v, a[pupilID] == v && v != ""
}

func TestRightsEndpointsAreAuthorizedPerPupil(t *testing.T) {
	f := newFixture(t)
	var logs bytes.Buffer
	h := &transparency.Rights{Store: f.st, Site: webtest.NewSite(t), Log: slog.New(slog.NewTextHandler(&logs, nil)),
		Auth: allow{f.seed.Pupil.ID: "guardian-of-ida", f.sibling.ID: "guardian-of-bo"}, Now: f.clock.Now}
	mux := http.NewServeMux()
	h.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	do := func(path, viewer string) (int, string) {
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.Header.Set("X-Viewer", viewer)
		req.Header.Set("Accept-Language", "en")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := do("/rights/"+f.seed.Pupil.ID+"/timeline", "guardian-of-ida")
	if code != 200 || !strings.Contains(body, "Teacher Anna Jensen (7A) reset the passkeys") || !strings.Contains(body, "Platform MatematikFessor received") {
		t.Fatalf("own child's timeline = %d", code)
	}
	if code, body := do("/rights/"+f.seed.Pupil.ID+"/export", "guardian-of-ida"); code != 200 || !strings.Contains(body, `"format": "elevid-export/1"`) {
		t.Fatalf("own child's export = %d", code)
	}
	// A guardian of another child sees nothing, and the attempt is logged.
	for _, path := range []string{"/rights/" + f.seed.Pupil.ID + "/timeline", "/rights/" + f.seed.Pupil.ID + "/export", "/rights/forged-id/export"} {
		code, body := do(path, "guardian-of-bo")
		if code != 404 || strings.Contains(body, "Anna Jensen") || strings.Contains(body, "Ida") {
			t.Fatalf("%s as another guardian = %d", path, code)
		}
	}
	if !strings.Contains(logs.String(), "may not see") || !strings.Contains(logs.String(), "forged-id") {
		t.Fatalf("refusals not logged: %s", logs.String())
	}
	if _, body := do("/rights/"+f.sibling.ID+"/timeline", "guardian-of-bo"); strings.Contains(body, "Anna Jensen") {
		t.Fatal("another child's timeline shows this child's entries")
	}
}

func TestRetentionJobLocksAndResumes(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	job := &transparency.Job{Store: f.st, Retention: transparency.Retention{ReleaseLog: 24 * time.Hour, AccessLog: 24 * time.Hour,
		RemovedPupils: 24 * time.Hour, ExpiredFlows: 24 * time.Hour}, Now: f.clock.Now, Log: slog.New(slog.DiscardHandler), Owner: "node-a", Batch: 1}
	// Another node holds the lease: the job does nothing.
	if err := f.st.TryLock(ctx, "retention", "node-b", time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := job.RunOnce(ctx); !errors.Is(err, school.ErrLocked) {
		t.Fatalf("RunOnce under a foreign lease = %v", err)
	}
	f.st.Unlock(ctx, "retention", "node-b")
	// Nothing is due yet.
	counts, err := job.RunOnce(ctx)
	if err != nil || counts[school.PurgeAccess] != 0 || counts[school.PurgeReleases] != 0 {
		t.Fatalf("early run = %v, %v", counts, err)
	}
	// Two days later everything is due. A run interrupted after its first
	// batch (of one) committed that batch; the next run deletes the rest,
	// each entry exactly once, and the audit counts add up.
	f.clock.Advance(48 * time.Hour)
	now := f.clock.Now()
	if n, err := f.st.Purge(ctx, school.PurgeAccess, now.Add(-24*time.Hour), now, 1); err != nil || n != 1 {
		t.Fatalf("first batch = %d, %v", n, err)
	}
	counts, err = job.RunOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if counts[school.PurgeAccess] != 2 || counts[school.PurgeReleases] != 1 {
		t.Fatalf("counts = %v", counts)
	}
	if left, _ := f.st.AccessForPupil(ctx, f.seed.Pupil.ID); len(left) != 0 {
		t.Fatalf("access entries left: %d", len(left))
	}
	entries, _ := f.st.ListAudit(ctx, school.AuditFilter{SchoolID: school.InstanceChain})
	var access []string
	for _, e := range entries {
		if strings.HasPrefix(e.Detail, "kind=access") {
			access = append(access, e.Detail)
		}
	}
	if strings.Join(access, ";") != "kind=access deleted=1;kind=access deleted=1;kind=access deleted=1" {
		t.Fatalf("audit counts = %v", access)
	}
	if err := f.st.VerifyAudit(ctx, school.InstanceChain); err != nil {
		t.Fatal(err)
	}
}

// TestErasureEndsAccess: a removed pupil whose erasure is due still held a
// platform token (the quarantine missed it); the retention job ends the
// access first, so the platform gets a logout notice, then erases.
func TestErasureEndsAccess(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	p := f.seed.Pupil
	_, err := f.st.CreateOIDCToken(ctx, school.OIDCToken{Kind: school.TokenAccess, PlatformID: f.seed.Platform.ID, PupilID: p.ID,
		Subject: "sub-erased", ExpiresAt: f.clock.Now().Add(72 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.UpdatePupil(ctx, p.ID, func(x school.Pupil) (school.Pupil, error) { x.Status = school.PupilRemoved; return x, nil }); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(48 * time.Hour)
	job := &transparency.Job{Store: f.st, Retention: transparency.Retention{ReleaseLog: 24 * time.Hour, AccessLog: 24 * time.Hour,
		RemovedPupils: 24 * time.Hour, ExpiredFlows: 24 * time.Hour}, Now: f.clock.Now, Log: slog.New(slog.DiscardHandler), Owner: "node-a"}
	counts, err := job.RunOnce(ctx)
	if err != nil || counts[school.PurgeRemovedPupils] != 1 {
		t.Fatalf("RunOnce = %v, %v", counts, err)
	}
	if _, err := f.st.GetPupil(ctx, p.ID); !errors.Is(err, school.ErrNotFound) {
		t.Fatalf("pupil not erased: %v", err)
	}
	notices, err := f.st.ListLogouts(ctx)
	if err != nil || len(notices) != 1 || notices[0].PlatformID != f.seed.Platform.ID || notices[0].Subject != "sub-erased" {
		t.Fatalf("logout notices = %+v, %v", notices, err)
	}
}
