package school

import (
	"context"
	"time"
)

// Store is ElevID's storage. Every method takes ctx first and returns the
// sentinel errors of this package wrapped with %w. Implementations are safe
// for concurrent use and keep no state that matters in memory, so several
// nodes on one database behave as one service.
type Store interface {
	Queries
	// InTx runs fn in one transaction: everything fn does through q is
	// committed together or not at all. When the database reports a
	// serialization failure or is busy, InTx rolls back and runs fn again,
	// so fn must not have effects outside q. Called on the q of an
	// enclosing InTx, it joins that transaction.
	InTx(ctx context.Context, fn func(q Queries) error) error
	// Ping reports whether the database is reachable.
	Ping(ctx context.Context) error
	// Close releases the database.
	Close() error
}

// briefKey marks a context whose transactions are brief.
type briefKey struct{}

// Brief returns ctx marked so that the transactions begun with it are
// brief: a few statements on rows already known, waiting on nothing but
// the database (a sign-in's session, a token and its release-log entry). A
// store may commit a brief transaction together with other brief ones
// that queued meanwhile (SQLite's group commit), so one that ran before
// answers only when those after it have run. Never mark one that may run
// long (a roster sync's apply, a purge, an import): the brief ones grouped
// with it would wait for it.
//
// A read outside a transaction marked Brief is a sign-in's lookup by key
// (a session, a credential, the consent state): a few rows, read at once.
// SQLite runs it on the writer's connection when that is idle, whose page
// cache is warm where a reading connection's was dropped by the last
// commit; writers queue behind it meanwhile, so never mark a read that
// may return many rows or scan.
func Brief(ctx context.Context) context.Context { return context.WithValue(ctx, briefKey{}, true) }

// IsBrief reports whether ctx was marked with Brief.
func IsBrief(ctx context.Context) bool { v, _ := ctx.Value(briefKey{}).(bool); return v }

// Queries is everything a Store can do, inside or outside a transaction.
type Queries interface {
	// AfterCommit runs fn once the current transaction has committed (at
	// once outside a transaction); a rolled-back or retried attempt drops
	// it. Use it for effects outside the store that must follow a change,
	// such as waking the logout queue workers after notices were queued.
	AfterCommit(fn func(ctx context.Context))
	SchoolStore
	ClassStore
	PupilStore
	GuardianStore
	StaffStore
	PlatformStore
	ConsentStore
	ConsentFlowStore
	GuardianVerificationStore
	AuditStore
	SettingStore
	LockStore
	AccessStore
	RetentionStore
	AuthnStore
	DirectoryStore
	SAMLStore
	OIDCStore
	ConsoleStore
}

// SchoolStore keeps schools.
type SchoolStore interface {
	// CreateSchool stores s with a new id; ErrConflict when the code is taken.
	CreateSchool(ctx context.Context, s School) (School, error)
	GetSchool(ctx context.Context, id string) (School, error)
	SchoolByCode(ctx context.Context, code string) (School, error)
	ListSchools(ctx context.Context) ([]School, error)
	// UpdateSchool runs fn on the current record inside a transaction and
	// stores what it returns; an error from fn aborts and is returned.
	UpdateSchool(ctx context.Context, id string, fn func(School) (School, error)) (School, error)
}

// ClassStore keeps classes. Every method is scoped by school.
type ClassStore interface {
	CreateClass(ctx context.Context, c Class) (Class, error)
	GetClass(ctx context.Context, schoolID, id string) (Class, error)
	ListClasses(ctx context.Context, schoolID string) ([]Class, error)
	UpdateClass(ctx context.Context, schoolID, id string, fn func(Class) (Class, error)) (Class, error)
	// DeleteClass removes the class and its memberships (not the pupils).
	DeleteClass(ctx context.Context, schoolID, id string) error
}

// PupilFilter selects pupils of one school.
type PupilFilter struct {
	SchoolID string // required
	ClassID  string // optional
	Status   PupilStatus
}

// PupilStore keeps pupils with their class and guardian links.
type PupilStore interface {
	// CreatePupil stores p with a new id (and its ClassIDs/GuardianIDs
	// links); ErrConflict when the external id is taken in the school.
	CreatePupil(ctx context.Context, p Pupil) (Pupil, error)
	// GetPupil returns a pupil of any school by id. Callers acting for a
	// school must compare SchoolID themselves.
	GetPupil(ctx context.Context, id string) (Pupil, error)
	PupilByExternalID(ctx context.Context, schoolID, externalID string) (Pupil, error)
	ListPupils(ctx context.Context, f PupilFilter) ([]Pupil, error)
	UpdatePupil(ctx context.Context, id string, fn func(Pupil) (Pupil, error)) (Pupil, error)
	// DeletePupil erases the pupil and everything that cascades from it.
	DeletePupil(ctx context.Context, id string) error
	// GetPupilProfile returns the pupil with their school and classes (in
	// id order) in one read; the pupil's ClassIDs are filled, GuardianIDs
	// are not. ErrNotFound for an unknown pupil.
	GetPupilProfile(ctx context.Context, id string) (PupilProfile, error)
}

// PupilProfile is a pupil with the school and classes, what assertions
// to platforms are made of.
type PupilProfile struct {
	Pupil   Pupil
	School  School
	Classes []Class
}

// GuardianStore keeps guardians.
type GuardianStore interface {
	CreateGuardian(ctx context.Context, g Guardian) (Guardian, error)
	GetGuardian(ctx context.Context, id string) (Guardian, error)
	GuardianByExternalID(ctx context.Context, schoolID, externalID string) (Guardian, error)
	ListGuardians(ctx context.Context, schoolID string) ([]Guardian, error)
	// GuardiansOf returns the guardians linked to a pupil.
	GuardiansOf(ctx context.Context, pupilID string) ([]Guardian, error)
	UpdateGuardian(ctx context.Context, id string, fn func(Guardian) (Guardian, error)) (Guardian, error)
	// DeleteGuardian removes a guardian with its links to pupils and its
	// sessions; ErrNotFound when there is none.
	DeleteGuardian(ctx context.Context, id string) error
}

// StaffStore keeps operators, school admins and teachers.
type StaffStore interface {
	// CreateStaff stores s with a new id; ErrConflict when the username is taken.
	CreateStaff(ctx context.Context, s Staff) (Staff, error)
	GetStaff(ctx context.Context, id string) (Staff, error)
	StaffByUsername(ctx context.Context, username string) (Staff, error)
	// ListStaff lists a school's staff, or the operators for InstanceChain ("").
	ListStaff(ctx context.Context, schoolID string) ([]Staff, error)
	UpdateStaff(ctx context.Context, id string, fn func(Staff) (Staff, error)) (Staff, error)
}

// PlatformStore keeps the learning platforms (relying parties).
type PlatformStore interface {
	// CreatePlatform stores p with a new id; ErrConflict when the client id is taken.
	CreatePlatform(ctx context.Context, p Platform) (Platform, error)
	GetPlatform(ctx context.Context, id string) (Platform, error)
	PlatformByClientID(ctx context.Context, clientID string) (Platform, error)
	ListPlatforms(ctx context.Context) ([]Platform, error)
	UpdatePlatform(ctx context.Context, id string, fn func(Platform) (Platform, error)) (Platform, error)
	DeletePlatform(ctx context.Context, id string) error
}

// ConsentStore answers whether a guardian's consent covers an action.
type ConsentStore interface {
	// EnrolmentAllowed reports whether an active pupil's enrolment flow is
	// consented, code_issued or enrolled, which enrolment codes require.
	EnrolmentAllowed(ctx context.Context, pupilID string) (bool, error)
	// ReleaseAllowed reports whether anything about an active pupil may be
	// released to the platform: enrolment must be allowed and the flow's
	// consent rule must cover the platform (see ConsentCovers).
	ReleaseAllowed(ctx context.Context, pupilID, platformID string) (bool, error)
}

// AuditFilter selects audit entries of one chain.
type AuditFilter struct {
	SchoolID  string
	SubjectID string // optional
	AfterSeq  int64  // entries with Seq > AfterSeq
	Limit     int    // 0 means 100
}

// AuditStore is the append-only, hash-chained audit log.
type AuditStore interface {
	// AppendAudit assigns e the next Seq of its school's chain, links and
	// hashes it and stores it. Concurrent appends to one chain serialize.
	AppendAudit(ctx context.Context, e AuditEntry) (AuditEntry, error)
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error)
	// VerifyAudit re-reads a school's whole chain and returns nil when it is
	// intact (keyed entries checked under the store's audit keys) and
	// agrees with every anchor of that chain, or an error wrapping
	// ErrChainBroken.
	VerifyAudit(ctx context.Context, schoolID string, anchors ...AuditAnchor) error
	// AuditHeads returns the current head of every chain (the anchors an
	// operator keeps outside the database), InstanceChain included.
	AuditHeads(ctx context.Context) ([]AuditAnchor, error)
	// RekeyAudit re-keys every chain that still holds legacy (unkeyed)
	// entries with the store's first audit key, after verifying it as it
	// is; a broken chain is left alone and reported (ErrChainBroken). It
	// returns the number of entries re-keyed. Nothing happens without keys.
	RekeyAudit(ctx context.Context) (int, error)
}

// SettingStore keeps instance-wide values such as generated secrets.
type SettingStore interface {
	GetSetting(ctx context.Context, key string) ([]byte, error)
	// EnsureSetting stores value under key unless a value is there already,
	// and returns the stored value: the first node to start wins.
	EnsureSetting(ctx context.Context, key string, value []byte) ([]byte, error)
}

// LockStore provides named leases that work across nodes.
type LockStore interface {
	// TryLock takes the lease name for owner until now+ttl; it succeeds when
	// the lease is free, expired or already owner's, and returns ErrLocked
	// otherwise.
	TryLock(ctx context.Context, name, owner string, ttl time.Duration) error
	// Unlock releases the lease if owner holds it.
	Unlock(ctx context.Context, name, owner string) error
}
