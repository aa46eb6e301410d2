package rostersync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
)

// Errors a run returns besides directory and store errors.
var (
	// ErrBusy means another run of the same school holds the lock.
	ErrBusy = errors.New("rostersync: a sync of this school is already running")
	// ErrThreshold means the run would quarantine more pupils (or disable
	// more staff, or change one field of more pupils) than the source's
	// threshold allows; nothing was applied. Run again with Force to apply
	// anyway.
	ErrThreshold = errors.New("rostersync: threshold exceeded")
	// ErrEmptyDirectory means a full search found no pupils (or no staff)
	// while the store has active ones; nothing was applied, even if forced.
	ErrEmptyDirectory = errors.New("rostersync: the directory returned no entries")
	// ErrNoSource means the school has no directory source.
	ErrNoSource = errors.New("rostersync: the school has no directory source")
)

// Actor is the audit actor of every change a sync applies.
const Actor = "sync"

// Options are a Syncer's dependencies.
type Options struct {
	Store  school.Store
	Sealer *school.Sealer // opens the bind password (context "ldap:"+schoolID)
	Log    *slog.Logger   // slog.Default when nil
	Now    func() time.Time
	// OnQuarantine is called inside the applying transaction for each pupil
	// put into quarantine, to end the pupil's access (cmd/elevid calls the
	// access service: sessions, tokens, logout notices); an error aborts
	// the whole run.
	OnQuarantine func(ctx context.Context, q school.Queries, pupilID string) error
	// Owner names this node in the run lock; random when empty.
	Owner string
	// Timeout bounds each LDAP request; 2 minutes when zero.
	Timeout time.Duration
	// LockTTL is the run lock's lease, renewed every LockTTL/3 while the
	// run lasts, so that a killed run blocks its school for at most this
	// long; school.DefaultLeaseTTL (20 s) when zero.
	LockTTL time.Duration
}

// Syncer mirrors schools' directories into the store. It is safe for
// concurrent use; runs of one school exclude each other through a lock in
// the store, across nodes.
type Syncer struct {
	opt Options
}

// New returns a Syncer.
func New(opt Options) *Syncer {
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Owner == "" {
		opt.Owner = "rostersync-" + school.NewID()[:12]
	}
	if opt.Timeout == 0 {
		opt.Timeout = 2 * time.Minute
	}
	if opt.LockTTL == 0 {
		opt.LockTTL = school.DefaultLeaseTTL
	}
	return &Syncer{opt: opt}
}

// RunOptions choose what one run does.
type RunOptions struct {
	Mode   school.SyncMode // SyncFull when empty
	DryRun bool            // compute and return the changes, write nothing but the run record
	Force  bool            // apply even past the deletion threshold
	// PupilID, when set, syncs only the pupil with this external id
	// (entryUUID / objectGUID); like an incremental run it removes no one.
	PupilID string
	// Progress, when set, is called after every page read.
	Progress func(Progress)
	// Peers, when set, is shared by the runs of many schools (sync --all,
	// one scheduler pass) to warn of a pupil (the same uid or external id)
	// found in two schools.
	Peers *Peers
}

// Peers remembers which school each pupil uid and external id was read
// in, across the runs of one pass over many schools. It is safe for
// concurrent use. The school that reads a pupil second gets the warning.
type Peers struct {
	mu   sync.Mutex
	seen map[string]peer
}

type peer struct{ school, dn string }

// NewPeers returns an empty Peers.
func NewPeers() *Peers { return &Peers{seen: map[string]peer{}} }

// claim records key for school; when another school has it, it returns
// that school and DN.
func (ps *Peers) claim(key, schoolCode, dn string) (peer, bool) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if o, ok := ps.seen[key]; ok {
		return o, o.school != schoolCode
	}
	ps.seen[key] = peer{school: schoolCode, dn: dn}
	return peer{}, false
}

// Progress reports a running sync.
type Progress struct {
	Phase   string // "classes", "guardians", "staff", "pupils", "apply"
	Entries int    // directory entries read so far
	Pages   int    // pages read so far
}

// Change is one planned or applied change. It names records by external
// id, store id and DN only.
type Change struct {
	Action     string // e.g. "pupil.create", "pupil.quarantine"
	ExternalID string
	ID         string   // store id; empty for records not yet created
	DN         string   // directory DN; empty for records gone from it
	Fields     []string `json:",omitempty"` // what changed, for updates
}

// Result is the outcome of a run.
type Result struct {
	Run     school.SyncRun
	Changes []Change
}

func lockName(schoolID string) string { return "rostersync:" + schoolID }

// lock takes the school's run lock (renewed while held) and marks the
// runs a dead holder left "running" as interrupted: holding the lock, no
// other run of the school can be alive.
func (s *Syncer) lock(ctx context.Context, schoolID string) (release func(), err error) {
	// Each holding gets its own owner name: two runs of one school in one
	// process (console and scheduler) must exclude each other too.
	owner := s.opt.Owner + "/" + school.NewID()[:8]
	release, err = school.HoldLock(ctx, s.opt.Store, lockName(schoolID), owner, s.opt.LockTTL, func(err error) {
		s.opt.Log.Warn("rostersync: renewing run lock", "school", schoolID, "err", err)
	})
	if errors.Is(err, school.ErrLocked) {
		return nil, ErrBusy
	}
	if err != nil {
		return nil, err
	}
	n, err := s.opt.Store.InterruptSyncRuns(ctx, schoolID, s.opt.Now())
	if err != nil {
		release()
		return nil, err
	}
	if n > 0 {
		s.opt.Log.Warn("rostersync: marked runs of a stopped process as interrupted", "school", schoolID, "runs", n)
	}
	return release, nil
}

// Reap marks the school's runs left "running" by a process that died as
// interrupted, when no live run holds the school's lock (else it does
// nothing).
func (s *Syncer) Reap(ctx context.Context, schoolID string) error {
	release, err := s.lock(ctx, schoolID)
	if errors.Is(err, ErrBusy) {
		return nil
	}
	if err != nil {
		return err
	}
	release()
	return nil
}

// Run syncs one school. It records the run (also a dry run) and returns
// its record and changes. On any directory error, threshold breach or
// empty result nothing is applied and the error is returned along with the
// record.
func (s *Syncer) Run(ctx context.Context, schoolID string, ro RunOptions) (Result, error) {
	st := s.opt.Store
	release, err := s.lock(ctx, schoolID)
	if err != nil {
		return Result{}, err
	}
	defer release()

	sch, err := st.GetSchool(ctx, schoolID)
	if err != nil {
		return Result{}, err
	}
	src, err := st.GetDirectorySource(ctx, schoolID)
	if errors.Is(err, school.ErrNotFound) {
		return Result{}, ErrNoSource
	}
	if err != nil {
		return Result{}, err
	}
	src = src.WithDefaults()
	mode := ro.Mode
	if mode == "" {
		mode = school.SyncFull
	}
	if ro.PupilID != "" {
		mode = school.SyncIncremental
	}
	since := latest(src.LastFullRun, src.LastIncrementalRun)
	if mode == school.SyncIncremental && ro.PupilID == "" && since.IsZero() {
		s.opt.Log.Info("rostersync: no earlier run; running a full sync instead of an incremental one", "school", schoolID)
		mode = school.SyncFull
	}
	run, err := st.CreateSyncRun(ctx, school.SyncRun{SchoolID: schoolID, StartedAt: s.opt.Now(), Mode: mode, DryRun: ro.DryRun, Forced: ro.Force})
	if err != nil {
		return Result{}, err
	}
	res, runErr := s.run(ctx, sch, src, &run, ro, since)
	res.Run = run
	switch {
	case runErr == nil:
		run.Status = school.SyncSucceeded
	case errors.Is(runErr, ErrThreshold):
		run.Status = school.SyncAbortedThreshold
		run.Error = runErr.Error()
	default:
		run.Status = school.SyncFailed
		run.Error = runErr.Error()
	}
	run.Counts = map[string]int{}
	for _, c := range res.Changes {
		run.Counts[c.Action]++
	}
	if runErr != nil && !errors.Is(runErr, ErrThreshold) && !ro.DryRun {
		// Nothing was applied: the counts describe no change.
		run.Counts = map[string]int{}
	}
	fin, err := st.FinishSyncRun(context.WithoutCancel(ctx), run)
	if err != nil {
		s.opt.Log.Error("rostersync: recording run", "school", schoolID, "run", run.ID, "err", err)
		fin = run
	}
	res.Run = fin
	lvl := slog.LevelInfo
	if runErr != nil {
		lvl = slog.LevelWarn
	}
	s.opt.Log.Log(ctx, lvl, "rostersync: run finished", "school", schoolID, "run", run.ID, "mode", mode, "dry_run", ro.DryRun,
		"status", fin.Status, "entries", fin.Entries, "pages", fin.Pages, "warnings", len(fin.Warnings)+fin.WarningsDropped,
		"duration", fin.EndedAt.Sub(fin.StartedAt).Round(time.Millisecond), "err", runErr)
	return res, runErr
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (s *Syncer) run(ctx context.Context, sch school.School, src school.DirectorySource, run *school.SyncRun, ro RunOptions, since time.Time) (Result, error) {
	if err := ValidateSource(src); err != nil {
		return Result{}, err
	}
	am, err := newAttrMap(src)
	if err != nil {
		return Result{}, err
	}
	src = forSchool(src, am, sch.Code)
	var password string
	if len(src.BindPassword) > 0 {
		if s.opt.Sealer == nil {
			return Result{}, errors.New("no sealer configured to open the bind password")
		}
		pw, err := s.opt.Sealer.Open(src.BindPassword, "ldap:"+src.SchoolID)
		if err != nil {
			return Result{}, fmt.Errorf("bind password: %w", err)
		}
		password = string(pw)
	}
	conn, err := dial(ctx, src, password, s.opt.Timeout)
	if err != nil {
		return Result{}, err
	}
	defer conn.Close()

	snap := &snapshot{}
	rd := &reader{conn: conn, src: src, am: am, run: run, now: s.opt.Now(), progress: ro.Progress, snap: snap, domain: sch.Domain}
	var extraPerson, extraPupil string
	switch {
	case ro.PupilID != "":
		v := ldapEscape(ro.PupilID)
		if am.BinaryID {
			b, err := EncodeGUID(ro.PupilID)
			if err != nil {
				return Result{}, fmt.Errorf("%w: pupil id: %v", school.ErrInvalid, err)
			}
			v = escapeBinary(b)
		}
		extraPupil = "(" + am.get(AttrID) + "=" + v + ")"
	case run.Mode == school.SyncIncremental:
		// A margin covers clock skew between us and the directory.
		extraPerson = "(" + am.get(AttrModified) + ">=" + ldapEscape(since.Add(-5*time.Minute).UTC().Format(am.TimeFormat)) + ")"
		extraPupil = extraPerson
	}
	err = rd.readClasses(ctx)
	if err == nil {
		err = rd.readPeople(ctx, extraPerson, extraPupil, ro.PupilID != "")
	}
	if err == nil {
		err = rd.resolveGuardians(ctx)
	}
	run.Entries, run.Pages = snap.entries, snap.pages
	if err != nil {
		return Result{}, fmt.Errorf("reading the directory: %w", err)
	}
	conn.Close()

	p, err := s.plan(ctx, sch, src, snap, run, ro)
	if err != nil {
		return Result{}, err
	}
	res := Result{Changes: p.changes}
	if err := p.check(src, run.Mode, ro.Force); err != nil {
		return res, err
	}
	if ro.DryRun {
		return res, nil
	}
	if ro.Progress != nil {
		ro.Progress(Progress{Phase: "apply", Entries: snap.entries, Pages: snap.pages})
	}
	err = s.opt.Store.InTx(ctx, func(q school.Queries) error {
		if err := s.apply(ctx, q, sch, p, run); err != nil {
			return err
		}
		if ro.PupilID != "" {
			return nil
		}
		return q.MarkDirectoryRun(ctx, sch.ID, run.Mode, run.StartedAt)
	})
	if err != nil {
		return Result{}, fmt.Errorf("applying changes: %w", err)
	}
	res.Changes = p.changes
	return res, nil
}

// forSchool narrows a source that serves many schools to one: the
// placeholder in base DNs becomes the school's code, and with a school
// attribute every filter gains (attr=code).
func forSchool(src school.DirectorySource, am attrMap, code string) school.DirectorySource {
	esc := escapeDNValue(code)
	for _, b := range []*string{&src.PupilBase, &src.StaffBase, &src.ClassBase, &src.GuardianBase} {
		*b = strings.ReplaceAll(*b, school.SchoolPlaceholder, esc)
	}
	if src.SchoolAttr != "" {
		clause := "(" + src.SchoolAttr + "=" + ldapEscape(code) + ")"
		src.PupilFilter = and(filterOr(src.PupilFilter, am.PersonFilter), clause)
		src.StaffFilter = and(filterOr(src.StaffFilter, am.PersonFilter), clause)
		src.GuardianFilter = and(filterOr(src.GuardianFilter, am.PersonFilter), clause)
		src.ClassFilter = and(filterOr(src.ClassFilter, am.GroupFilter), clause)
	}
	return src
}

// escapeDNValue escapes v for use as an attribute value in a DN (RFC 4514).
func escapeDNValue(v string) string {
	var b strings.Builder
	for i, c := range v {
		switch {
		case strings.ContainsRune(`,+"\<>;=`, c),
			(c == '#' || c == ' ') && i == 0,
			c == ' ' && i == len(v)-1:
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// ldapEscape escapes a value for a filter assertion (RFC 4515).
func ldapEscape(v string) string { return ldap.EscapeFilter(v) }
