package school

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
)

// NewID returns a random 128-bit identifier in lower-case hex. Ids are
// opaque: they never encode a name, a date or a directory attribute
// (NewLogID's rows are the one exception).
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("school: crypto/rand failed: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// NewLogID returns a 128-bit identifier in lower-case hex whose first 48
// bits are t in milliseconds since 1970 and the other 80 random: rows
// made one after another get ids that sort by time, so the index on them
// grows at one end instead of at random places (in a table of a million
// rows, a random place is a page not in any cache). Only for rows that
// store their creation time beside the id anyway and are no person's
// identifier: the release and access logs and OIDC tokens.
func NewLogID(t time.Time) string {
	var b [16]byte
	if _, err := rand.Read(b[6:]); err != nil {
		panic(fmt.Sprintf("school: crypto/rand failed: %v", err))
	}
	ms := uint64(max(t.UnixMilli(), 0))
	for i := 5; i >= 0; i-- {
		b[i], ms = byte(ms), ms>>8
	}
	return hex.EncodeToString(b[:])
}

// School is a tenant: one school (or a municipality's school unit). Staff
// of one school never see another school's data.
type School struct {
	ID   string
	Code string // short, unique, lower-case code used in URLs and CLI, e.g. "demo"
	Name string
	// Domain is the home-organization domain used for scoped identifiers
	// (eduPersonPrincipalName, schacHomeOrganization), e.g. "demo.elevid.dk".
	Domain    string
	CreatedAt time.Time
}

var (
	codeRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,30}$`)
	domainRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,}$`)
)

// Validate reports the first problem with s, wrapped in ErrInvalid.
func (s School) Validate() error {
	switch {
	case !codeRE.MatchString(s.Code):
		return fmt.Errorf("%w: school code %q must be 2–31 lower-case letters, digits or dashes", ErrInvalid, s.Code)
	case strings.TrimSpace(s.Name) == "":
		return fmt.Errorf("%w: school name is empty", ErrInvalid)
	case !domainRE.MatchString(s.Domain):
		return fmt.Errorf("%w: school domain %q is not a DNS name", ErrInvalid, s.Domain)
	}
	return nil
}

// Class is a class or teaching group of a school, mirrored from the
// directory (ExternalID) or created by hand (empty ExternalID).
type Class struct {
	ID         string
	SchoolID   string
	ExternalID string
	Name       string // e.g. "7A"
	CreatedAt  time.Time
}

// PupilStatus is where a pupil stands in the roster.
type PupilStatus string

// Pupil statuses. Only active pupils can log in or be released to a platform.
const (
	PupilActive      PupilStatus = "active"
	PupilQuarantined PupilStatus = "quarantined" // gone from the directory, within the grace period
	PupilRemoved     PupilStatus = "removed"     // grace ended; personal data is due for erasure
)

// Valid reports whether s is one of the defined statuses.
func (s PupilStatus) Valid() bool {
	return s == PupilActive || s == PupilQuarantined || s == PupilRemoved
}

// Pupil is a child in a school's roster.
type Pupil struct {
	ID         string
	SchoolID   string
	ExternalID string // entryUUID / objectGUID from the directory; never the DN
	GivenName  string
	FamilyName string
	// BirthDate is the date of birth (UTC midnight); zero when the directory
	// has none, in which case enrolment cannot start.
	BirthDate     time.Time
	ClassIDs      []string
	GuardianIDs   []string
	Status        PupilStatus
	QuarantinedAt time.Time // zero unless Status is quarantined or removed
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Name is the pupil's display name.
func (p Pupil) Name() string { return strings.TrimSpace(p.GivenName + " " + p.FamilyName) }

// Validate reports the first problem with p, wrapped in ErrInvalid.
func (p Pupil) Validate() error {
	switch {
	case p.SchoolID == "":
		return fmt.Errorf("%w: pupil has no school", ErrInvalid)
	case strings.TrimSpace(p.GivenName) == "":
		return fmt.Errorf("%w: pupil has no given name", ErrInvalid)
	case !p.Status.Valid():
		return fmt.Errorf("%w: pupil status %q", ErrInvalid, p.Status)
	}
	return nil
}

// AgeOn returns the pupil's age in whole years on day t, and false when
// the date of birth is unknown.
func (p Pupil) AgeOn(t time.Time) (int, bool) {
	if p.BirthDate.IsZero() {
		return 0, false
	}
	b := p.BirthDate.UTC()
	t = t.UTC()
	age := t.Year() - b.Year()
	if t.Month() < b.Month() || (t.Month() == b.Month() && t.Day() < b.Day()) {
		age--
	}
	return age, true
}

// Guardian is a parent or other holder of parental responsibility, linked
// to one or more pupils of a school.
type Guardian struct {
	ID         string
	SchoolID   string
	ExternalID string
	Name       string
	Email      string
	CreatedAt  time.Time
}

// Validate reports the first problem with g, wrapped in ErrInvalid.
func (g Guardian) Validate() error {
	if g.SchoolID == "" {
		return fmt.Errorf("%w: guardian has no school", ErrInvalid)
	}
	if g.Email != "" {
		if err := ValidEmail(g.Email); err != nil {
			return err
		}
	}
	return nil
}

// ValidEmail reports whether addr is a bare e-mail address (no display
// name, no line breaks), wrapped in ErrInvalid when it is not.
func ValidEmail(addr string) error {
	a, err := mail.ParseAddress(addr)
	if err != nil || a.Address != addr || a.Name != "" || strings.ContainsAny(addr, "\r\n<>\" ") {
		return fmt.Errorf("%w: %q is not an e-mail address", ErrInvalid, addr)
	}
	return nil
}

// Role is what a staff member may do.
type Role string

// Staff roles. Operators are cross-tenant and have no SchoolID.
const (
	RoleOperator    Role = "operator"
	RoleSchoolAdmin Role = "school_admin"
	RoleTeacher     Role = "teacher"
)

// Valid reports whether r is a defined role.
func (r Role) Valid() bool {
	return r == RoleOperator || r == RoleSchoolAdmin || r == RoleTeacher
}

// Staff is an operator, a school administrator (school IT) or a teacher.
type Staff struct {
	ID           string
	SchoolID     string // empty for operators
	ExternalID   string // set when the account comes from the directory
	Username     string // unique per instance
	Name         string
	Email        string
	Role         Role
	ClassIDs     []string // the classes a teacher teaches
	PasswordHash string   // argon2id PHC string; empty for passkey-only accounts
	TOTPSecret   []byte   // encrypted; empty until TOTP is enrolled
	// PasswordExpires is set while the password is a one-time (invite or
	// reset) password: it must be changed at the first sign-in and is
	// refused from this time on. Zero for a password the member chose.
	PasswordExpires time.Time
	Disabled        bool
	CreatedAt       time.Time
}

// Validate reports the first problem with s, wrapped in ErrInvalid.
func (s Staff) Validate() error {
	switch {
	case !s.Role.Valid():
		return fmt.Errorf("%w: staff role %q", ErrInvalid, s.Role)
	case s.Role == RoleOperator && s.SchoolID != "":
		return fmt.Errorf("%w: an operator belongs to no school", ErrInvalid)
	case s.Role != RoleOperator && s.SchoolID == "":
		return fmt.Errorf("%w: %s must belong to a school", ErrInvalid, s.Role)
	case strings.TrimSpace(s.Username) == "":
		return fmt.Errorf("%w: staff username is empty", ErrInvalid)
	}
	if s.Email != "" {
		return ValidEmail(s.Email)
	}
	return nil
}

// Protocol is how a platform receives assertions.
type Protocol string

// Supported protocols.
const (
	ProtocolOIDC Protocol = "oidc"
	ProtocolSAML Protocol = "saml"
)

// SubjectType says how a platform identifies a pupil.
type SubjectType string

// Subject types. Pairwise is the default; public needs a recorded reason.
const (
	SubjectPairwise SubjectType = "pairwise"
	SubjectPublic   SubjectType = "public"
)

// AttributeGrant is one attribute (claim) a platform may receive, with the
// recorded justification shown to guardians in Danish and in English (both
// required). Shared asks for the shared form of an identifier (today the
// eduPersonPrincipalName from the directory id, the same at every
// platform) instead of the pairwise default; guardians are told plainly
// that it lets platforms recognise the pupil across services.
type AttributeGrant struct {
	Name            string `json:"name"`
	JustificationDA string `json:"justification_da"`
	JustificationEN string `json:"justification_en"`
	Shared          bool   `json:"shared,omitempty"`
}

// Justification returns the justification in lang ("da" or "en"; Danish
// for anything else).
func (a AttributeGrant) Justification(lang string) string {
	if lang == "en" {
		return a.JustificationEN
	}
	return a.JustificationDA
}

// AttributeNames returns the names of grants, in order.
func AttributeNames(grants []AttributeGrant) []string {
	out := make([]string, 0, len(grants))
	for _, g := range grants {
		out = append(out, g.Name)
	}
	return out
}

// Platform is a learning platform: a relying party (OIDC) or service
// provider (SAML), registered once per instance by an operator.
type Platform struct {
	ID       string
	Name     string
	Protocol Protocol
	// ClientID is the OIDC client id or the SAML entity id; unique.
	ClientID string
	// Settings holds the protocol-specific registration (redirect URIs,
	// secrets' hashes, SAML metadata, lifetimes …) as JSON, owned by idp.
	Settings          []byte
	Attributes        []AttributeGrant
	SubjectType       SubjectType
	SubjectTypeReason string
	CreatedAt         time.Time
	UpdatedAt         time.Time
}

// Validate reports the first problem with p, wrapped in ErrInvalid.
func (p Platform) Validate() error {
	switch {
	case strings.TrimSpace(p.Name) == "":
		return fmt.Errorf("%w: platform name is empty", ErrInvalid)
	case p.Protocol != ProtocolOIDC && p.Protocol != ProtocolSAML:
		return fmt.Errorf("%w: platform protocol %q", ErrInvalid, p.Protocol)
	case strings.TrimSpace(p.ClientID) == "":
		return fmt.Errorf("%w: platform client id is empty", ErrInvalid)
	case p.SubjectType != SubjectPairwise && p.SubjectType != SubjectPublic:
		return fmt.Errorf("%w: subject type %q", ErrInvalid, p.SubjectType)
	case p.SubjectType == SubjectPublic && strings.TrimSpace(p.SubjectTypeReason) == "":
		return fmt.Errorf("%w: a public subject type needs a recorded reason", ErrInvalid)
	}
	seen := map[string]bool{}
	for _, a := range p.Attributes {
		if strings.TrimSpace(a.Name) == "" || strings.TrimSpace(a.JustificationDA) == "" || strings.TrimSpace(a.JustificationEN) == "" {
			return fmt.Errorf("%w: attribute %q needs a name and a justification in Danish and in English", ErrInvalid, a.Name)
		}
		if seen[a.Name] {
			return fmt.Errorf("%w: attribute %q is listed twice", ErrInvalid, a.Name)
		}
		seen[a.Name] = true
	}
	return nil
}

// Allows reports whether the platform may receive attribute name.
func (p Platform) Allows(name string) bool {
	_, ok := p.Grant(name)
	return ok
}

// Grant returns the platform's grant of attribute name.
func (p Platform) Grant(name string) (AttributeGrant, bool) {
	for _, a := range p.Attributes {
		if a.Name == name {
			return a, true
		}
	}
	return AttributeGrant{}, false
}
