package school

import (
	"context"
	"fmt"
	"net/url"
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
	CAPEM    string // PEM CA bundle to trust; empty means the system roots
	BindDN   string
	// BindPassword is sealed with a Sealer under context "ldap:"+SchoolID;
	// the store keeps it opaque.
	BindPassword []byte

	PupilBase, PupilFilter       string
	StaffBase, StaffFilter       string
	ClassBase, ClassFilter       string
	GuardianBase, GuardianFilter string

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
	// applies anything unless forced.
	MaxDeletePercent int
	MaxDeletions     int

	// LastFullRun and LastIncrementalRun are the start times of the last
	// successful applied runs of each mode; incremental runs read what
	// changed since the later of the two.
	LastFullRun        time.Time
	LastIncrementalRun time.Time
	UpdatedAt          time.Time
}

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
	SyncAbortedThreshold SyncStatus = "aborted_threshold" // too many deletions; nothing applied
)

// SyncWarning is one skipped or doubtful directory entry. Message names
// the problem, never the entry's personal data beyond the DN.
type SyncWarning struct {
	DN      string `json:"dn"`
	Message string `json:"message"`
}

// MaxSyncWarnings bounds the warnings kept per run; WarningsDropped counts
// the rest.
const MaxSyncWarnings = 1000

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
	Error           string // empty unless failed or aborted
}

// AddWarning records a warning, keeping at most MaxSyncWarnings.
func (r *SyncRun) AddWarning(dn, msg string) {
	if len(r.Warnings) >= MaxSyncWarnings {
		r.WarningsDropped++
		return
	}
	r.Warnings = append(r.Warnings, SyncWarning{DN: dn, Message: msg})
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
	// ListSyncRuns returns a school's latest runs, newest first (limit 0
	// means 50).
	ListSyncRuns(ctx context.Context, schoolID string, limit int) ([]SyncRun, error)
	// CreateGuardians stores many guardians of one school at once, with
	// new ids, in order; ErrConflict when an external id is taken.
	CreateGuardians(ctx context.Context, gs []Guardian) ([]Guardian, error)
	// CreatePupils stores many pupils at once (with their class and
	// guardian links), with new ids, in order; ErrConflict when an
	// external id is taken.
	CreatePupils(ctx context.Context, ps []Pupil) ([]Pupil, error)
	// AppendAudits appends entries of one school's chain in order, as
	// AppendAudit would one by one.
	AppendAudits(ctx context.Context, es []AuditEntry) error
}
