package rostersync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
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
	if err == nil && ro.PupilID == "" {
		err = rd.readGuardians(ctx, extraPerson)
	}
	if err == nil && ro.PupilID == "" {
		err = rd.readStaff(ctx, extraPerson)
	}
	if err == nil {
		err = rd.readPupils(ctx, extraPupil)
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
		if err := s.apply(ctx, q, sch, src, p, run); err != nil {
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

// plan is the diff of one run.
type plan struct {
	newClasses   []school.Class
	renames      map[string]string // class id → new name
	newGuardians []school.Guardian
	guardianUpd  map[string]school.Guardian // id → wanted
	newPupils    []pupilPlan
	pupilUpd     []pupilPlan
	quarantine   []string
	remove       []string
	newStaff     []staffPlan
	staffUpd     []staffPlan
	disable      []string

	activePupils   int
	directoryStaff int
	// Entries read and directory-sourced records stored, for the empty
	// result safety of guardian and class searches.
	guardianEntries, storedGuardians int
	classEntries, storedClasses      int
	guardianSearched, classSearched  bool
	pupilEntries                     int
	staffEntries                     int
	staffSearched                    bool
	changes                          []Change
	// fieldChanges counts active pupils whose field would change or be
	// cleared, by field ("birthDate", "name", "class" for a pupil left in
	// no class), for the field-change safety.
	fieldChanges map[string]int
}

type pupilPlan struct {
	id       string // empty for new
	p        school.Pupil
	classes  []string // class ids, or "new:"+external id
	guardian []string // guardian ids, or "new:"+external id
	restore  bool
}

type staffPlan struct {
	id      string
	s       school.Staff
	classes []string
	enable  bool
}

func (p *plan) add(action, ext, id, dn string, fields ...string) {
	p.changes = append(p.changes, Change{Action: action, ExternalID: ext, ID: id, DN: dn, Fields: fields})
}

// minFieldChanges is the number of pupils whose field may change in one
// run whatever the share: a small school's few renames never stop a run.
const minFieldChanges = 10

var fieldNames = map[string]string{"birthDate": "date of birth", "name": "name", "class": "class (left in none)"}

// check applies the deprovisioning safeties.
func (p *plan) check(src school.DirectorySource, mode school.SyncMode, force bool) error {
	// Classes are read in full by every run.
	if p.classSearched && p.classEntries == 0 && p.storedClasses > 0 {
		return fmt.Errorf("%w: the class search found nothing while %d classes are stored; nothing was applied", ErrEmptyDirectory, p.storedClasses)
	}
	// Field changes are bounded in every mode.
	for _, f := range []string{"birthDate", "name", "class"} {
		if n := p.fieldChanges[f]; !force && n > minFieldChanges && n*100 > p.activePupils*src.MaxDeletePercent {
			return fmt.Errorf("%w: %d of %d active pupils would have their %s changed or cleared (limit %d %%); nothing was applied",
				ErrThreshold, n, p.activePupils, fieldNames[f], src.MaxDeletePercent)
		}
	}
	if mode != school.SyncFull {
		return nil
	}
	if p.pupilEntries == 0 && p.activePupils > 0 {
		return fmt.Errorf("%w: the pupil search found nothing while %d pupils are active; nothing was applied", ErrEmptyDirectory, p.activePupils)
	}
	if p.staffSearched && p.staffEntries == 0 && p.directoryStaff > 0 {
		return fmt.Errorf("%w: the staff search found nothing while %d staff are active; nothing was applied", ErrEmptyDirectory, p.directoryStaff)
	}
	if p.guardianSearched && p.guardianEntries == 0 && p.storedGuardians > 0 {
		return fmt.Errorf("%w: the guardian search found nothing while %d guardians are stored; nothing was applied", ErrEmptyDirectory, p.storedGuardians)
	}
	if force {
		return nil
	}
	over := func(n, of int) bool {
		return n > 0 && (n*100 > of*src.MaxDeletePercent || n > src.MaxDeletions)
	}
	if over(len(p.quarantine), p.activePupils) {
		return fmt.Errorf("%w: %d of %d active pupils would be quarantined (limit %d %% or %d); nothing was applied",
			ErrThreshold, len(p.quarantine), p.activePupils, src.MaxDeletePercent, src.MaxDeletions)
	}
	if over(len(p.disable), p.directoryStaff) {
		return fmt.Errorf("%w: %d of %d staff would be disabled (limit %d %% or %d); nothing was applied",
			ErrThreshold, len(p.disable), p.directoryStaff, src.MaxDeletePercent, src.MaxDeletions)
	}
	return nil
}

func (s *Syncer) plan(ctx context.Context, sch school.School, src school.DirectorySource, snap *snapshot, run *school.SyncRun, ro RunOptions) (*plan, error) {
	st := s.opt.Store
	p := &plan{renames: map[string]string{}, guardianUpd: map[string]school.Guardian{}, fieldChanges: map[string]int{},
		pupilEntries: snap.pupilEntries, staffEntries: snap.staffEntries, staffSearched: src.StaffBase != "" && ro.PupilID == "",
		guardianEntries: snap.guardianEntries, guardianSearched: src.GuardianBase != "" && ro.PupilID == "",
		classEntries: snap.classEntries, classSearched: src.ClassBase != ""}
	now := s.opt.Now()
	full := run.Mode == school.SyncFull

	// Classes.
	classes, err := st.ListClasses(ctx, sch.ID)
	if err != nil {
		return nil, err
	}
	classKey := map[string]string{} // external id → id or "new:"+ext
	manualClass := map[string]bool{}
	for _, c := range classes {
		if c.ExternalID == "" {
			manualClass[c.ID] = true
			continue
		}
		classKey[c.ExternalID] = c.ID
		p.storedClasses++
	}
	byID := map[string]school.Class{}
	for _, c := range classes {
		byID[c.ID] = c
	}
	for _, dc := range snap.classes {
		id, ok := classKey[dc.ext]
		if !ok {
			classKey[dc.ext] = "new:" + dc.ext
			p.newClasses = append(p.newClasses, school.Class{SchoolID: sch.ID, ExternalID: dc.ext, Name: dc.name})
			p.add("class.create", dc.ext, "", dc.dn)
			continue
		}
		if byID[id].Name != dc.name {
			p.renames[id] = dc.name
			p.add("class.update", dc.ext, id, dc.dn, "name")
		}
	}
	classesOf := func(dn string, memberOf []string) []string {
		set := map[string]bool{}
		for _, ext := range snap.memberClasses[normDN(dn)] {
			set[classKey[ext]] = true
		}
		for _, m := range memberOf {
			if ext, ok := snap.classByDN[m]; ok {
				set[classKey[ext]] = true
			}
		}
		out := make([]string, 0, len(set))
		for k := range set {
			out = append(out, k)
		}
		sort.Strings(out)
		return out
	}

	// Guardians.
	guardians, err := st.ListGuardians(ctx, sch.ID)
	if err != nil {
		return nil, err
	}
	guardianKey := map[string]string{}
	manualGuardian := map[string]bool{}
	gByID := map[string]school.Guardian{}
	for _, g := range guardians {
		gByID[g.ID] = g
		if g.ExternalID == "" {
			manualGuardian[g.ID] = true
			continue
		}
		guardianKey[g.ExternalID] = g.ID
		p.storedGuardians++
	}
	for _, dg := range snap.guardians {
		id, ok := guardianKey[dg.ext]
		if !ok {
			guardianKey[dg.ext] = "new:" + dg.ext
			p.newGuardians = append(p.newGuardians, school.Guardian{SchoolID: sch.ID, ExternalID: dg.ext, Name: dg.name, Email: dg.email})
			p.add("guardian.create", dg.ext, "", dg.dn)
			continue
		}
		old := gByID[id]
		var fields []string
		if old.Name != dg.name {
			fields = append(fields, "name")
		}
		if old.Email != dg.email {
			fields = append(fields, "email")
		}
		if len(fields) > 0 {
			old.Name, old.Email = dg.name, dg.email
			p.guardianUpd[id] = old
			p.add("guardian.update", dg.ext, id, dg.dn, fields...)
		}
	}

	// Pupils.
	pupils, err := st.ListPupils(ctx, school.PupilFilter{SchoolID: sch.ID})
	if err != nil {
		return nil, err
	}
	byExt := make(map[string]*school.Pupil, len(pupils))
	for i := range pupils {
		if pupils[i].Status == school.PupilActive {
			p.activePupils++
		}
		if pupils[i].ExternalID != "" {
			byExt[pupils[i].ExternalID] = &pupils[i]
		}
	}
	for _, dp := range snap.pupils {
		wantClasses := classesOf(dp.dn, dp.memberOf)
		var wantGuardians []string
		for _, gdn := range dp.guardianDNs {
			ext, ok := snap.guardianByDN[gdn]
			if !ok {
				run.AddWarning(school.WarnBadGuardianLink, dp.dn, "guardian link to an entry that is not a valid guardian: "+gdn)
				continue
			}
			wantGuardians = append(wantGuardians, guardianKey[ext])
		}
		sort.Strings(wantGuardians)
		wantGuardians = slices.Compact(wantGuardians)
		if len(wantGuardians) == 0 {
			run.AddWarning(school.WarnNoGuardian, dp.dn, "pupil has no guardian: consent cannot be asked")
		}
		if ro.Peers != nil {
			keys := []string{"id:" + dp.ext}
			if dp.uid != "" {
				keys = append(keys, "uid:"+dp.uid)
			}
			for _, k := range keys {
				if o, dup := ro.Peers.claim(k, sch.Code, dp.dn); dup {
					what, _, _ := strings.Cut(k, ":")
					run.AddWarning(school.WarnDuplicateUID, dp.dn, fmt.Sprintf("the same %s is a pupil of school %s too (%s)", what, o.school, o.dn))
					break
				}
			}
		}
		old, ok := byExt[dp.ext]
		if !ok {
			if len(wantClasses) == 0 && src.ClassBase != "" {
				run.AddWarning(school.WarnNoClass, dp.dn, "pupil is in no class: no teacher can start their enrolment")
			}
			p.newPupils = append(p.newPupils, pupilPlan{
				p:       school.Pupil{SchoolID: sch.ID, ExternalID: dp.ext, GivenName: dp.given, FamilyName: dp.family, BirthDate: dp.birth},
				classes: wantClasses, guardian: wantGuardians,
			})
			p.add("pupil.create", dp.ext, "", dp.dn)
			continue
		}
		// Links to hand-made classes and guardians stay.
		for _, c := range old.ClassIDs {
			if manualClass[c] {
				wantClasses = append(wantClasses, c)
			}
		}
		for _, g := range old.GuardianIDs {
			if manualGuardian[g] {
				wantGuardians = append(wantGuardians, g)
			}
		}
		sort.Strings(wantClasses)
		sort.Strings(wantGuardians)
		if len(wantClasses) == 0 && src.ClassBase != "" {
			run.AddWarning(school.WarnNoClass, dp.dn, "pupil is in no class: no teacher can start their enrolment")
		}
		var fields []string
		if old.GivenName != dp.given || old.FamilyName != dp.family {
			fields = append(fields, "name")
		}
		if !old.BirthDate.Equal(dp.birth) {
			fields = append(fields, "birthDate")
		}
		classesChanged := !sameSet(old.ClassIDs, wantClasses)
		if old.Status == school.PupilActive {
			for _, f := range fields {
				p.fieldChanges[f]++
			}
			if len(old.ClassIDs) > 0 && len(wantClasses) == 0 {
				p.fieldChanges["class"]++
			}
		}
		guardiansChanged := !sameSet(old.GuardianIDs, wantGuardians)
		restore := old.Status != school.PupilActive
		if len(fields) == 0 && !classesChanged && !guardiansChanged && !restore {
			continue
		}
		np := *old
		np.GivenName, np.FamilyName, np.BirthDate = dp.given, dp.family, dp.birth
		p.pupilUpd = append(p.pupilUpd, pupilPlan{id: old.ID, p: np, classes: wantClasses, guardian: wantGuardians, restore: restore})
		if restore {
			if old.Status == school.PupilRemoved {
				run.AddWarning(school.WarnRestored, dp.dn, "pupil reappeared after the grace period ended; restored")
			}
			p.add("pupil.restore", dp.ext, old.ID, dp.dn)
		}
		if len(fields) > 0 {
			p.add("pupil.update", dp.ext, old.ID, dp.dn, fields...)
		}
		if classesChanged {
			p.add("pupil.class", dp.ext, old.ID, dp.dn)
		}
		if guardiansChanged {
			p.add("pupil.guardians", dp.ext, old.ID, dp.dn)
		}
	}
	if full && ro.PupilID == "" && src.GuardianBase != "" {
		linked := map[string]bool{}
		for _, dp := range snap.pupils {
			for _, gdn := range dp.guardianDNs {
				if ext, ok := snap.guardianByDN[gdn]; ok {
					linked[ext] = true
				}
			}
		}
		for _, dg := range snap.guardians {
			if !linked[dg.ext] {
				run.AddWarning(school.WarnOrphanGuardian, dg.dn, "guardian of no pupil: no pupil entry points to this guardian")
			}
		}
	}
	if full {
		for i := range pupils {
			old := &pupils[i]
			if old.ExternalID == "" || snap.seenPupils[old.ExternalID] {
				continue
			}
			switch old.Status {
			case school.PupilActive:
				p.quarantine = append(p.quarantine, old.ID)
				p.add("pupil.quarantine", old.ExternalID, old.ID, "")
			case school.PupilQuarantined:
				if !old.QuarantinedAt.IsZero() && now.Sub(old.QuarantinedAt) >= src.Grace {
					p.remove = append(p.remove, old.ID)
					p.add("pupil.remove", old.ExternalID, old.ID, "")
				}
			}
		}
	}

	// Staff.
	if src.StaffBase != "" && ro.PupilID == "" {
		staff, err := st.ListStaff(ctx, sch.ID)
		if err != nil {
			return nil, err
		}
		sByExt := map[string]*school.Staff{}
		for i := range staff {
			if staff[i].ExternalID != "" {
				sByExt[staff[i].ExternalID] = &staff[i]
				if !staff[i].Disabled {
					p.directoryStaff++
				}
			}
		}
		for _, ds := range snap.staff {
			wantClasses := classesOf(ds.dn, ds.memberOf)
			old, ok := sByExt[ds.ext]
			if !ok {
				p.newStaff = append(p.newStaff, staffPlan{s: school.Staff{SchoolID: sch.ID, ExternalID: ds.ext, Username: ds.username,
					Name: ds.name, Email: ds.email, Role: ds.role}, classes: wantClasses})
				p.add("staff.create", ds.ext, "", ds.dn)
				continue
			}
			for _, c := range old.ClassIDs {
				if manualClass[c] {
					wantClasses = append(wantClasses, c)
				}
			}
			sort.Strings(wantClasses)
			var fields []string
			if old.Username != ds.username {
				fields = append(fields, "username")
			}
			if old.Name != ds.name {
				fields = append(fields, "name")
			}
			if old.Email != ds.email {
				fields = append(fields, "email")
			}
			if old.Role != ds.role {
				fields = append(fields, "role")
			}
			if !sameSet(old.ClassIDs, wantClasses) {
				fields = append(fields, "classes")
			}
			if len(fields) == 0 && !old.Disabled {
				continue
			}
			ns := *old
			ns.Username, ns.Name, ns.Email, ns.Role = ds.username, ds.name, ds.email, ds.role
			p.staffUpd = append(p.staffUpd, staffPlan{id: old.ID, s: ns, classes: wantClasses, enable: old.Disabled})
			if old.Disabled {
				p.add("staff.enable", ds.ext, old.ID, ds.dn)
			}
			if len(fields) > 0 {
				p.add("staff.update", ds.ext, old.ID, ds.dn, fields...)
			}
		}
		if full {
			for _, old := range staff {
				if old.ExternalID != "" && !old.Disabled && !snap.seenStaff[old.ExternalID] {
					p.disable = append(p.disable, old.ID)
					p.add("staff.disable", old.ExternalID, old.ID, "")
				}
			}
		}
	}
	return p, nil
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	sort.Strings(a)
	sort.Strings(b)
	return slices.Equal(a, b)
}

type auditDetail struct {
	Run    string   `json:"run"`
	Fields []string `json:"fields,omitempty"`
}

// apply writes p through q, inside the caller's transaction.
func (s *Syncer) apply(ctx context.Context, q school.Queries, sch school.School, src school.DirectorySource, p *plan, run *school.SyncRun) error {
	now := s.opt.Now()
	var audits []school.AuditEntry
	audit := func(action, subject string, fields ...string) {
		d, _ := json.Marshal(auditDetail{Run: run.ID, Fields: fields})
		audits = append(audits, school.AuditEntry{SchoolID: sch.ID, Time: now, ActorID: Actor, ActorRole: "system", Action: action, SubjectID: subject, Detail: string(d)})
	}
	ids := map[string]string{} // "new:"+ext → id, for classes and guardians
	resolve := func(keys []string) []string {
		out := make([]string, 0, len(keys))
		for _, k := range keys {
			if id, ok := ids[k]; ok {
				k = id
			}
			out = append(out, k)
		}
		return out
	}
	for _, c := range p.newClasses {
		nc, err := q.CreateClass(ctx, c)
		if err != nil {
			return fmt.Errorf("create class: %w", err)
		}
		ids["new:"+c.ExternalID] = nc.ID
		audit("class.create", nc.ID)
	}
	for id, name := range p.renames {
		if _, err := q.UpdateClass(ctx, sch.ID, id, func(c school.Class) (school.Class, error) { c.Name = name; return c, nil }); err != nil {
			return fmt.Errorf("update class: %w", err)
		}
		audit("class.update", id, "name")
	}
	if len(p.newGuardians) > 0 {
		gs, err := q.CreateGuardians(ctx, p.newGuardians)
		if err != nil {
			return fmt.Errorf("create guardians: %w", err)
		}
		for _, g := range gs {
			ids["new:"+g.ExternalID] = g.ID
			audit("guardian.create", g.ID)
		}
	}
	for id, want := range p.guardianUpd {
		if _, err := q.UpdateGuardian(ctx, id, func(g school.Guardian) (school.Guardian, error) {
			g.Name, g.Email = want.Name, want.Email
			return g, nil
		}); err != nil {
			return fmt.Errorf("update guardian: %w", err)
		}
		audit("guardian.update", id)
	}
	if len(p.newPupils) > 0 {
		ps := make([]school.Pupil, len(p.newPupils))
		for i, np := range p.newPupils {
			np.p.ClassIDs, np.p.GuardianIDs = resolve(np.classes), resolve(np.guardian)
			ps[i] = np.p
		}
		created, err := q.CreatePupils(ctx, ps)
		if err != nil {
			return fmt.Errorf("create pupils: %w", err)
		}
		for _, c := range created {
			audit("pupil.create", c.ID)
		}
	}
	for _, up := range p.pupilUpd {
		var fields []string
		_, err := q.UpdatePupil(ctx, up.id, func(old school.Pupil) (school.Pupil, error) {
			nw := old
			nw.GivenName, nw.FamilyName, nw.BirthDate = up.p.GivenName, up.p.FamilyName, up.p.BirthDate
			nw.ClassIDs, nw.GuardianIDs = resolve(up.classes), resolve(up.guardian)
			if up.restore {
				nw.Status, nw.QuarantinedAt = school.PupilActive, time.Time{}
			}
			fields = changedPupilFields(old, nw)
			return nw, nil
		})
		if err != nil {
			return fmt.Errorf("update pupil: %w", err)
		}
		if up.restore {
			audit("pupil.restore", up.id)
		}
		if len(fields) > 0 {
			audit("pupil.update", up.id, fields...)
		}
	}
	for _, id := range p.quarantine {
		if _, err := q.UpdatePupil(ctx, id, func(old school.Pupil) (school.Pupil, error) {
			old.Status, old.QuarantinedAt = school.PupilQuarantined, now
			return old, nil
		}); err != nil {
			return fmt.Errorf("quarantine pupil: %w", err)
		}
		if s.opt.OnQuarantine != nil {
			if err := s.opt.OnQuarantine(ctx, q, id); err != nil {
				return fmt.Errorf("quarantine hook: %w", err)
			}
		}
		audit("pupil.quarantine", id)
	}
	for _, id := range p.remove {
		if _, err := q.UpdatePupil(ctx, id, func(old school.Pupil) (school.Pupil, error) {
			old.Status = school.PupilRemoved
			return old, nil
		}); err != nil {
			return fmt.Errorf("remove pupil: %w", err)
		}
		audit("pupil.remove", id)
	}
	for _, ns := range p.newStaff {
		if other, err := q.StaffByUsername(ctx, ns.s.Username); err == nil {
			run.AddWarning(school.WarnStaffUsername, "", fmt.Sprintf("staff username %q is taken by account %s; not created", ns.s.Username, other.ID))
			continue
		} else if !errors.Is(err, school.ErrNotFound) {
			return err
		}
		ns.s.ClassIDs = resolve(ns.classes)
		c, err := q.CreateStaff(ctx, ns.s)
		if err != nil {
			return fmt.Errorf("create staff: %w", err)
		}
		audit("staff.create", c.ID)
	}
	for _, up := range p.staffUpd {
		if other, err := q.StaffByUsername(ctx, up.s.Username); err == nil && other.ID != up.id {
			run.AddWarning(school.WarnStaffUsername, "", fmt.Sprintf("staff username %q is taken by account %s; not updated", up.s.Username, other.ID))
			continue
		}
		if _, err := q.UpdateStaff(ctx, up.id, func(old school.Staff) (school.Staff, error) {
			old.Username, old.Name, old.Email, old.Role = up.s.Username, up.s.Name, up.s.Email, up.s.Role
			old.ClassIDs = resolve(up.classes)
			old.Disabled = false
			return old, nil
		}); err != nil {
			return fmt.Errorf("update staff: %w", err)
		}
		if up.enable {
			audit("staff.enable", up.id)
		}
		audit("staff.update", up.id)
	}
	for _, id := range p.disable {
		if _, err := q.UpdateStaff(ctx, id, func(old school.Staff) (school.Staff, error) {
			old.Disabled = true
			return old, nil
		}); err != nil {
			return fmt.Errorf("disable staff: %w", err)
		}
		audit("staff.disable", id)
	}
	counts := map[string]int{}
	for _, c := range p.changes {
		counts[c.Action]++
	}
	d, _ := json.Marshal(struct {
		Run    string          `json:"run"`
		Mode   school.SyncMode `json:"mode"`
		Forced bool            `json:"forced,omitempty"`
		Counts map[string]int  `json:"counts"`
	}{run.ID, run.Mode, run.Forced, counts})
	audits = append(audits, school.AuditEntry{SchoolID: sch.ID, Time: now, ActorID: Actor, ActorRole: "system", Action: "sync.apply", SubjectID: run.ID, Detail: string(d)})
	return q.AppendAudits(ctx, audits)
}

func changedPupilFields(a, b school.Pupil) []string {
	var f []string
	if a.GivenName != b.GivenName || a.FamilyName != b.FamilyName {
		f = append(f, "name")
	}
	if !a.BirthDate.Equal(b.BirthDate) {
		f = append(f, "birthDate")
	}
	if !sameSet(a.ClassIDs, b.ClassIDs) {
		f = append(f, "classes")
	}
	if !sameSet(a.GuardianIDs, b.GuardianIDs) {
		f = append(f, "guardians")
	}
	return f
}
