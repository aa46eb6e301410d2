package transparency

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// ExportFormat names the version of the export document.
const ExportFormat = "elevid-export/1"

// Export is everything ElevID holds about one pupil (the right of access,
// GDPR article 15). It never contains key material, token or code hashes,
// or session secrets. The format is documented in README.md.
type Export struct {
	Format      string           `json:"format"`
	GeneratedAt time.Time        `json:"generated_at"`
	Pupil       ExportPupil      `json:"pupil"`
	School      ExportSchool     `json:"school"`
	Classes     []ExportClass    `json:"classes"`
	Guardians   []ExportGuardian `json:"guardians"`
	Enrolment   *ExportEnrolment `json:"enrolment"`
	Consents    []ExportConsent  `json:"consents"`
	Passkeys    []ExportPasskey  `json:"passkeys"`
	Sessions    []ExportSession  `json:"sessions"`
	Releases    []ExportRelease  `json:"releases"`
	AccessLog   []ExportAccess   `json:"access_log"`
	Audit       []ExportAudit    `json:"audit"`
}

// ExportPupil is the roster record.
type ExportPupil struct {
	ID            string     `json:"id"`
	ExternalID    string     `json:"external_id"`
	GivenName     string     `json:"given_name"`
	FamilyName    string     `json:"family_name"`
	BirthDate     string     `json:"birth_date,omitempty"`
	Status        string     `json:"status"`
	QuarantinedAt *time.Time `json:"quarantined_at,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// ExportSchool names the school.
type ExportSchool struct {
	Code   string `json:"code"`
	Name   string `json:"name"`
	Domain string `json:"domain"`
}

// ExportClass is a class the pupil belongs to.
type ExportClass struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// ExportGuardian is a guardian on record.
type ExportGuardian struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Email string `json:"email"`
}

// ExportEnrolment is the enrolment flow.
type ExportEnrolment struct {
	State     string     `json:"state"`
	Rule      string     `json:"consent_rule"`
	Age       int        `json:"age_at_start"`
	Flagged   bool       `json:"outside_age_range"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// ExportConsent is one consent decision, with its history (withdrawal).
type ExportConsent struct {
	GuardianID      string     `json:"guardian_id"`
	Platform        string     `json:"platform"`
	Decision        string     `json:"decision"`
	DecidedAt       time.Time  `json:"decided_at"`
	WithdrawnAt     *time.Time `json:"withdrawn_at,omitempty"`
	VerifiedSubject string     `json:"verified_identity,omitempty"`
	// Attributes are the attributes the decision is about (for a grant:
	// exactly what it covers), in plain words, with the justification
	// the guardian was shown; Refused are attributes the guardian said no
	// to while the rest of the grant stands.
	Attributes []ExportAttribute `json:"attributes"`
	Refused    []ExportAttribute `json:"refused,omitempty"`
}

// ExportAttribute is one attribute of a consent.
type ExportAttribute struct {
	Name            string `json:"name"`
	LabelDA         string `json:"label_da"`
	LabelEN         string `json:"label_en"`
	JustificationDA string `json:"justification_da,omitempty"`
	JustificationEN string `json:"justification_en,omitempty"`
	Shared          bool   `json:"shared,omitempty"`
}

func exportAttribute(g school.AttributeGrant) ExportAttribute {
	return ExportAttribute{Name: g.Name, LabelDA: web.AttrLabel("da", g.Name, g.Shared), LabelEN: web.AttrLabel("en", g.Name, g.Shared),
		JustificationDA: g.JustificationDA, JustificationEN: g.JustificationEN, Shared: g.Shared}
}

// ExportPasskey describes a passkey without any key material.
type ExportPasskey struct {
	Label          string     `json:"label"`
	CreatedAt      time.Time  `json:"created_at"`
	LastUsedAt     *time.Time `json:"last_used_at,omitempty"`
	RevokedAt      *time.Time `json:"revoked_at,omitempty"`
	BackupEligible bool       `json:"backup_eligible"`
	BackupState    bool       `json:"backed_up"`
	CloneWarning   bool       `json:"clone_warning"`
}

// ExportSession is a sign-in session, named by its non-secret reference.
type ExportSession struct {
	Ref        string     `json:"ref"`
	CreatedAt  time.Time  `json:"created_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	UserAgent  string     `json:"user_agent"`
	ACR        string     `json:"acr"`
}

// ExportRelease is an entry of the release log.
type ExportRelease struct {
	Platform string    `json:"platform"`
	Protocol string    `json:"protocol"`
	Via      string    `json:"via"`
	Claims   []string  `json:"claims"`
	Time     time.Time `json:"time"`
}

// ExportAccess is an entry of the access log.
type ExportAccess struct {
	Staff   string    `json:"staff"`
	Role    string    `json:"role"`
	Action  string    `json:"action"`
	Purpose string    `json:"purpose,omitempty"`
	Class   string    `json:"class,omitempty"`
	Time    time.Time `json:"time"`
}

// ExportAudit is an audit-log entry about the pupil.
type ExportAudit struct {
	Action string    `json:"action"`
	Actor  string    `json:"actor_role"`
	Detail string    `json:"detail"`
	Time   time.Time `json:"time"`
}

func opt(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// BuildExport collects everything held about pupilID at time now.
func BuildExport(ctx context.Context, st school.Queries, pupilID string, now time.Time) (Export, error) {
	p, err := st.GetPupil(ctx, pupilID)
	if err != nil {
		return Export{}, err
	}
	sc, err := st.GetSchool(ctx, p.SchoolID)
	if err != nil {
		return Export{}, err
	}
	x := Export{Format: ExportFormat, GeneratedAt: now.UTC(), School: ExportSchool{Code: sc.Code, Name: sc.Name, Domain: sc.Domain},
		Pupil: ExportPupil{ID: p.ID, ExternalID: p.ExternalID, GivenName: p.GivenName, FamilyName: p.FamilyName, Status: string(p.Status),
			QuarantinedAt: opt(p.QuarantinedAt), CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt},
		Classes: []ExportClass{}, Guardians: []ExportGuardian{}, Consents: []ExportConsent{}, Passkeys: []ExportPasskey{},
		Sessions: []ExportSession{}, Releases: []ExportRelease{}, AccessLog: []ExportAccess{}, Audit: []ExportAudit{}}
	if !p.BirthDate.IsZero() {
		x.Pupil.BirthDate = p.BirthDate.Format(time.DateOnly)
	}
	classNames := map[string]string{}
	classes, err := st.ListClasses(ctx, p.SchoolID)
	if err != nil {
		return x, err
	}
	for _, c := range classes {
		classNames[c.ID] = c.Name
	}
	for _, id := range p.ClassIDs {
		x.Classes = append(x.Classes, ExportClass{ID: id, Name: classNames[id]})
	}
	guardians, err := st.GuardiansOf(ctx, p.ID)
	if err != nil {
		return x, err
	}
	for _, g := range guardians {
		x.Guardians = append(x.Guardians, ExportGuardian{ID: g.ID, Name: g.Name, Email: g.Email})
	}
	switch e, err := st.GetEnrolment(ctx, p.ID); {
	case err == nil:
		x.Enrolment = &ExportEnrolment{State: string(e.State), Rule: string(e.Rule), Age: e.Age, Flagged: e.Flagged,
			CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt, ExpiresAt: opt(e.ExpiresAt)}
	case !errors.Is(err, school.ErrNotFound):
		return x, err
	}
	platformNames := map[string]string{}
	platforms, err := st.ListPlatforms(ctx)
	if err != nil {
		return x, err
	}
	for _, pl := range platforms {
		platformNames[pl.ID] = pl.Name
	}
	consents, err := st.ListConsents(ctx, p.ID)
	if err != nil {
		return x, err
	}
	for _, c := range consents {
		name := platformNames[c.PlatformID]
		if c.PlatformID == "" {
			name = "*"
		}
		ec := ExportConsent{GuardianID: c.GuardianID, Platform: name, Decision: c.Decision,
			DecidedAt: c.DecidedAt, WithdrawnAt: opt(c.WithdrawnAt), VerifiedSubject: c.VerifiedSubject, Attributes: []ExportAttribute{}}
		for _, a := range c.Attributes {
			ec.Attributes = append(ec.Attributes, exportAttribute(a))
		}
		for _, r := range c.Refused {
			ec.Refused = append(ec.Refused, exportAttribute(school.AttributeGrant{Name: r}))
		}
		x.Consents = append(x.Consents, ec)
	}
	creds, err := st.ListCredentials(ctx, school.PupilOwner(p.ID), true)
	if err != nil {
		return x, err
	}
	for _, c := range creds {
		x.Passkeys = append(x.Passkeys, ExportPasskey{Label: c.Label, CreatedAt: c.CreatedAt, LastUsedAt: opt(c.LastUsedAt),
			RevokedAt: opt(c.RevokedAt), BackupEligible: c.BackupEligible, BackupState: c.BackupState, CloneWarning: c.CloneWarning})
	}
	sessions, err := st.ListSessions(ctx, p.ID)
	if err != nil {
		return x, err
	}
	for _, s := range sessions {
		x.Sessions = append(x.Sessions, ExportSession{Ref: s.Ref, CreatedAt: s.CreatedAt, LastSeenAt: s.LastSeenAt, ExpiresAt: s.ExpiresAt,
			RevokedAt: opt(s.RevokedAt), UserAgent: s.UserAgent, ACR: s.ACR})
	}
	releases, err := st.ListReleases(ctx, p.ID)
	if err != nil {
		return x, err
	}
	for _, r := range releases {
		x.Releases = append(x.Releases, ExportRelease{Platform: r.PlatformName, Protocol: string(r.Protocol), Via: r.Via, Claims: r.Claims, Time: r.Time})
	}
	access, err := st.AccessForPupil(ctx, p.ID)
	if err != nil {
		return x, err
	}
	for _, a := range access {
		x.AccessLog = append(x.AccessLog, ExportAccess{Staff: a.StaffName, Role: string(a.Role), Action: a.Action, Purpose: a.Purpose,
			Class: classNames[a.ClassID], Time: a.Time})
	}
	audit, err := st.ListAudit(ctx, school.AuditFilter{SchoolID: p.SchoolID, SubjectID: p.ID, Limit: 10000})
	if err != nil {
		return x, fmt.Errorf("audit: %w", err)
	}
	for _, e := range audit {
		x.Audit = append(x.Audit, ExportAudit{Action: e.Action, Actor: e.ActorRole, Detail: e.Detail, Time: e.Time})
	}
	return x, nil
}
