package school

import (
	"context"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Directory presets: the attribute maps roster sync knows out of the box.
const (
	PresetOpenLDAP = "openldap" // OpenLDAP with inetOrgPerson and ElevID's small schema
	PresetAD       = "ad"       // Microsoft Active Directory
)

// Defaults of a DirectorySource, applied by DirectorySource.WithDefaults.
const (
	DefaultSyncPageSize         = 500
	DefaultSyncInterval         = 6 * time.Hour
	DefaultQuarantineGrace      = 30 * 24 * time.Hour
	DefaultMaxDeletePercent     = 10
	DefaultMaxDeletions         = 500
	DefaultFullSyncInterval     = 24 * time.Hour
	maxSyncPageSize             = 5000
	minSyncInterval             = time.Minute
	maxDirectoryAttributeLength = 200
)

// DirectorySource is where a school's roster comes from: one LDAP
// directory (OpenLDAP or Active Directory) read by package rostersync.
// There is at most one per school.
type DirectorySource struct {
	SchoolID string
	URL      string // ldap://host:389 or ldaps://host:636
	StartTLS bool   // upgrade an ldap:// connection with StartTLS
	// Insecure allows a plain ldap:// connection without StartTLS (the
	// bind password then travels in clear). The console refuses such a
	// URL unless it is set, and shows it in red.
	Insecure bool
	CAPEM    string // PEM CA bundle to trust; empty means the system roots
	BindDN   string
	// BindPassword is sealed with a Sealer under context "ldap:"+SchoolID;
	// the store keeps it opaque.
	BindPassword []byte

	// Base DNs may hold the placeholder SchoolPlaceholder, replaced by the
	// school's code (DN-escaped) at run time, so that one source serves
	// many schools of one directory (ou={school},ou=schools,dc=…).
	PupilBase, PupilFilter       string
	StaffBase, StaffFilter       string
	ClassBase, ClassFilter       string
	GuardianBase, GuardianFilter string

	// SchoolAttr, when set, names an attribute holding the school code
	// on pupil, staff, guardian and class entries: every search of the
	// school adds (SchoolAttr=code) to its filter. Base DNs and SchoolAttr
	// may be combined.
	SchoolAttr string

	PageSize int    // paged-search page size
	Preset   string // PresetOpenLDAP or PresetAD
	// Attributes overrides single entries of the preset's attribute map,
	// e.g. {"birthDate": "schacDateOfBirth"}.
	Attributes map[string]string

	Interval     time.Duration // between scheduled runs; 0 disables scheduling
	FullInterval time.Duration // between full runs when scheduled runs are incremental; 0 means every run is full
	Grace        time.Duration // quarantine before a gone pupil is removed

	// A run that would quarantine more than MaxDeletePercent % of the
	// active pupils, or more than MaxDeletions pupils, stops before it
	// applies anything unless forced. So does a run that would clear or
	// change one field (birth date, name, class) of more than
	// MaxDeletePercent % of the active pupils (and more than 10 of them).
	MaxDeletePercent int
	MaxDeletions     int

	// LastFullRun and LastIncrementalRun are the start times of the last
	// successful applied runs of each mode; incremental runs read what
	// changed since the later of the two.
	LastFullRun        time.Time
	LastIncrementalRun time.Time
	UpdatedAt          time.Time
}

// SchoolPlaceholder in a DirectorySource's base DNs stands for the
// school's code.
const SchoolPlaceholder = "{school}"

// WithDefaults returns s with zero settings replaced by their defaults.
func (s DirectorySource) WithDefaults() DirectorySource {
	if s.PageSize == 0 {
		s.PageSize = DefaultSyncPageSize
	}
	if s.Grace == 0 {
		s.Grace = DefaultQuarantineGrace
	}
	if s.MaxDeletePercent == 0 {
		s.MaxDeletePercent = DefaultMaxDeletePercent
	}
	if s.MaxDeletions == 0 {
		s.MaxDeletions = DefaultMaxDeletions
	}
	if s.Preset == "" {
		s.Preset = PresetOpenLDAP
	}
	return s
}

// Validate reports every problem with s at once, wrapped in ErrInvalid.
// Filters are checked for syntax by package rostersync, which knows LDAP.
func (s DirectorySource) Validate() error {
	var probs []string
	if s.SchoolID == "" {
		probs = append(probs, "no school")
	}
	u, err := url.Parse(s.URL)
	switch {
	case err != nil || u.Host == "":
		probs = append(probs, fmt.Sprintf("URL %q is not an ldap:// or ldaps:// URL", s.URL))
	case u.Scheme != "ldap" && u.Scheme != "ldaps":
		probs = append(probs, fmt.Sprintf("URL scheme %q must be ldap or ldaps", u.Scheme))
	case u.Scheme == "ldaps" && s.StartTLS:
		probs = append(probs, "StartTLS is for ldap:// URLs, not ldaps://")
	}
	if s.CAPEM != "" && !strings.Contains(s.CAPEM, "-----BEGIN CERTIFICATE-----") {
		probs = append(probs, "CA bundle is not PEM")
	}
	if strings.TrimSpace(s.PupilBase) == "" {
		probs = append(probs, "no base DN for pupils")
	}
	if s.Preset != PresetOpenLDAP && s.Preset != PresetAD {
		probs = append(probs, fmt.Sprintf("preset %q must be %q or %q", s.Preset, PresetOpenLDAP, PresetAD))
	}
	if s.PageSize < 1 || s.PageSize > maxSyncPageSize {
		probs = append(probs, fmt.Sprintf("page size %d must be 1–%d", s.PageSize, maxSyncPageSize))
	}
	if s.Interval != 0 && s.Interval < minSyncInterval {
		probs = append(probs, fmt.Sprintf("interval %s is shorter than %s", s.Interval, minSyncInterval))
	}
	if s.FullInterval < 0 || s.Grace < 0 {
		probs = append(probs, "negative interval or grace")
	}
	if s.MaxDeletePercent < 0 || s.MaxDeletePercent > 100 || s.MaxDeletions < 0 {
		probs = append(probs, "deletion threshold must be 0–100 % and a non-negative count")
	}
	if s.SchoolAttr != "" && (len(s.SchoolAttr) > maxDirectoryAttributeLength || strings.ContainsAny(s.SchoolAttr, " ()=*\\,")) {
		probs = append(probs, fmt.Sprintf("school attribute %q is not an attribute name", s.SchoolAttr))
	}
	for k, v := range s.Attributes {
		if k == "" || v == "" || len(v) > maxDirectoryAttributeLength || strings.ContainsAny(v, " ()=*\\,") {
			probs = append(probs, fmt.Sprintf("attribute map entry %q=%q is not an attribute name", k, v))
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: directory source: %s", ErrInvalid, strings.Join(probs, "; "))
	}
	return nil
}

// SyncMode is whether a run reads the whole directory or only changes.
type SyncMode string

// Sync modes. Only full runs quarantine pupils gone from the directory.
const (
	SyncFull        SyncMode = "full"
	SyncIncremental SyncMode = "incremental"
)

// SyncStatus is where a sync run stands.
type SyncStatus string

// Sync run statuses.
const (
	SyncRunning          SyncStatus = "running"
	SyncSucceeded        SyncStatus = "succeeded"
	SyncFailed           SyncStatus = "failed"
	SyncAbortedThreshold SyncStatus = "aborted_threshold" // too many deletions or field changes; nothing applied
	// SyncInterrupted is a run whose process died (kill -9, crash, power
	// loss) before it recorded an outcome: the next run of the school finds
	// it "running" without a lock holder and marks it interrupted, with
	// EndedAt the time it was found. A transaction that was not committed
	// applied nothing.
	SyncInterrupted SyncStatus = "interrupted"
)

// Warning kinds: what a SyncWarning is about. The CLI and the console
// summarise a run's warnings by kind.
const (
	WarnSkipped         = "skipped"           // entry not imported (invalid id, no name, bad e-mail …)
	WarnDuplicateID     = "duplicate_id"      // the same external id twice in one school's read
	WarnNoBirthDate     = "no_birth_date"     // pupil has no date of birth (enrolment cannot start)
	WarnBadBirthDate    = "bad_birth_date"    // invalid date of birth: imported without one
	WarnNoGuardian      = "no_guardian"       // pupil points to no guardian (consent cannot be asked)
	WarnBadGuardianLink = "bad_guardian_link" // pupil points to an entry that is not a valid guardian
	WarnNoEmail         = "no_email"          // guardian without an e-mail address
	WarnNoClass         = "no_class"          // pupil in no class
	WarnDuplicateUID    = "duplicate_uid"     // the same uid (or external id) in two schools
	WarnOrphanGuardian  = "orphan_guardian"   // guardian no pupil points to
	WarnStaffUsername   = "staff_username"    // staff username taken by another account
	WarnRestored        = "restored"          // pupil reappeared after the grace period
	WarnOther           = "other"
)

// SyncWarning is one skipped or doubtful directory entry. Message names
// the problem, never the entry's personal data beyond the DN.
type SyncWarning struct {
	Kind    string `json:"kind,omitempty"` // one of the Warn… kinds
	DN      string `json:"dn"`
	Message string `json:"message"`
}

// MaxSyncWarnings bounds the warnings kept per run, and
// MaxSyncWarningsPerKind those kept of one kind, so that a common kind
// (guardians without e-mail) never crowds out a rare one;
// WarningsDropped counts the rest. WarningCounts counts them all.
const (
	MaxSyncWarnings        = 1000
	MaxSyncWarningsPerKind = 50
)

// SyncRun is the record of one sync of one school.
type SyncRun struct {
	ID        string
	SchoolID  string
	StartedAt time.Time
	EndedAt   time.Time // zero while running
	Mode      SyncMode
	DryRun    bool
	Forced    bool
	Status    SyncStatus
	// Counts holds the number of changes by action, e.g.
	// "pupil.create": 12, "pupil.quarantine": 1.
	Counts          map[string]int
	Entries         int // directory entries read
	Pages           int // pages read
	Warnings        []SyncWarning
	WarningsDropped int
	// WarningCounts counts every warning by kind, kept or dropped.
	WarningCounts map[string]int
	Error         string // empty unless failed or aborted
}

// AddWarning records a warning of kind, keeping at most
// MaxSyncWarningsPerKind of one kind and MaxSyncWarnings in all.
func (r *SyncRun) AddWarning(kind, dn, msg string) {
	if kind == "" {
		kind = WarnOther
	}
	if r.WarningCounts == nil {
		r.WarningCounts = map[string]int{}
	}
	r.WarningCounts[kind]++
	if r.WarningCounts[kind] > MaxSyncWarningsPerKind || len(r.Warnings) >= MaxSyncWarnings {
		r.WarningsDropped++
		return
	}
	r.Warnings = append(r.Warnings, SyncWarning{Kind: kind, DN: dn, Message: msg})
}

// WarningTotal is the number of warnings of the run, kept or dropped.
func (r SyncRun) WarningTotal() int { return len(r.Warnings) + r.WarningsDropped }

// WarningSummary is the warnings of one kind: how many, and the DNs of
// the first few.
type WarningSummary struct {
	Kind  string
	Count int
	DNs   []string // at most the n asked for, in the order found
	More  int      // Count - len(DNs)
}

// WarningSummaries groups r's warnings by kind, most frequent first, with
// up to n DNs of each.
func (r SyncRun) WarningSummaries(n int) []WarningSummary {
	counts := map[string]int{}
	for k, c := range r.WarningCounts {
		counts[k] = c
	}
	if len(counts) == 0 { // runs recorded before warnings had kinds
		for _, w := range r.Warnings {
			counts[kindOr(w.Kind)]++
		}
	}
	byKind := map[string]*WarningSummary{}
	var out []WarningSummary
	for k, c := range counts {
		byKind[k] = &WarningSummary{Kind: k, Count: c}
	}
	for _, w := range r.Warnings {
		s := byKind[kindOr(w.Kind)]
		if s == nil || len(s.DNs) >= n {
			continue
		}
		dn := w.DN
		if dn == "" {
			dn = w.Message
		}
		s.DNs = append(s.DNs, dn)
	}
	for _, s := range byKind {
		s.More = s.Count - len(s.DNs)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

func kindOr(k string) string {
	if k == "" {
		return WarnOther
	}
	return k
}

// DirectoryStore keeps directory sources and sync runs, and writes a
// roster in bulk for roster sync.
type DirectoryStore interface {
	// GetDirectorySource returns the school's source; ErrNotFound when it
	// has none.
	GetDirectorySource(ctx context.Context, schoolID string) (DirectorySource, error)
	// PutDirectorySource validates and stores (creates or replaces) src.
	PutDirectorySource(ctx context.Context, src DirectorySource) (DirectorySource, error)
	// ListDirectorySources returns every school's source.
	ListDirectorySources(ctx context.Context) ([]DirectorySource, error)
	// MarkDirectoryRun records the start time of a successful applied run
	// of mode; ErrNotFound when the school has no source.
	MarkDirectoryRun(ctx context.Context, schoolID string, mode SyncMode, startedAt time.Time) error
	// CreateSyncRun stores r with a new id and StartedAt now when zero.
	CreateSyncRun(ctx context.Context, r SyncRun) (SyncRun, error)
	// FinishSyncRun replaces the stored run r.ID with r, setting EndedAt
	// to now when zero; ErrNotFound for an unknown run.
	FinishSyncRun(ctx context.Context, r SyncRun) (SyncRun, error)
	GetSyncRun(ctx context.Context, id string) (SyncRun, error)
	// InterruptSyncRuns marks every run of the school still "running" as
	// interrupted, ended at, and returns how many it marked. Call it only
	// while holding the school's sync lock: then no live run exists.
	InterruptSyncRuns(ctx context.Context, schoolID string, at time.Time) (int, error)
	// ListSyncRuns returns a school's latest runs, newest first (limit 0
	// means 50).
	ListSyncRuns(ctx context.Context, schoolID string, limit int) ([]SyncRun, error)
	// CreateGuardians stores many guardians of one school at once, with
	// new ids, in order; ErrConflict when an external id is taken.
	CreateGuardians(ctx context.Context, gs []Guardian) ([]Guardian, error)
	// CreateClasses stores many classes at once, with new ids, in order;
	// ErrConflict when an external id is taken in the school.
	CreateClasses(ctx context.Context, cs []Class) ([]Class, error)
	// CreateStaffMembers stores many staff accounts at once (with their
	// class links, which must be classes of the member's school), with new
	// ids, in order; ErrConflict when a username is taken.
	CreateStaffMembers(ctx context.Context, sts []Staff) ([]Staff, error)
	// StaffIDsByUsername returns the ids of the staff accounts (of any
	// school) holding these usernames, keyed by username; a name no
	// account holds is absent.
	StaffIDsByUsername(ctx context.Context, usernames []string) (map[string]string, error)
	// CreatePupils stores many pupils at once (with their class and
	// guardian links), with new ids, in order; ErrConflict when an
	// external id is taken.
	CreatePupils(ctx context.Context, ps []Pupil) ([]Pupil, error)
	// AppendAudits appends entries of one school's chain in order, as
	// AppendAudit would one by one.
	AppendAudits(ctx context.Context, es []AuditEntry) error
}
