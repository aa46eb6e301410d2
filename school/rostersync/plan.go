package rostersync

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

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
	id          string
	s           school.Staff
	oldUsername string // the stored username, for updates
	classes     []string
	enable      bool
}

func (p *plan) add(action, ext, id, dn string, fields ...string) {
	p.changes = append(p.changes, Change{Action: action, ExternalID: ext, ID: id, DN: dn, Fields: fields})
}

// planner computes one run's plan from the snapshot and the stored
// records, one kind of record a step. Each step reads the school's stored
// records of its kind in one listing, whatever their number.
type planner struct {
	st   school.Queries
	sch  school.School
	src  school.DirectorySource
	snap *snapshot
	run  *school.SyncRun
	ro   RunOptions
	now  time.Time
	full bool
	p    *plan

	classKey       map[string]string // class external id → id, or "new:"+ext
	manualClass    map[string]bool   // ids of hand-made classes
	guardianKey    map[string]string // guardian external id → id, or "new:"+ext
	manualGuardian map[string]bool   // ids of hand-made guardians
}

func (s *Syncer) plan(ctx context.Context, sch school.School, src school.DirectorySource, snap *snapshot, run *school.SyncRun, ro RunOptions) (*plan, error) {
	pl := &planner{st: s.opt.Store, sch: sch, src: src, snap: snap, run: run, ro: ro, now: s.opt.Now(), full: run.Mode == school.SyncFull,
		p: &plan{renames: map[string]string{}, guardianUpd: map[string]school.Guardian{}, fieldChanges: map[string]int{},
			pupilEntries: snap.pupilEntries, staffEntries: snap.staffEntries, staffSearched: src.StaffBase != "" && ro.PupilID == "",
			guardianEntries: snap.guardianEntries, guardianSearched: src.GuardianBase != "" && ro.PupilID == "",
			classEntries: snap.classEntries, classSearched: src.ClassBase != ""},
		classKey: map[string]string{}, manualClass: map[string]bool{}, guardianKey: map[string]string{}, manualGuardian: map[string]bool{}}
	for _, step := range []func(context.Context) error{pl.classes, pl.guardians, pl.pupils, pl.staff} {
		if err := step(ctx); err != nil {
			return nil, err
		}
	}
	return pl.p, nil
}

// classes plans the creation and renaming of directory classes.
func (pl *planner) classes(ctx context.Context) error {
	p := pl.p
	classes, err := pl.st.ListClasses(ctx, pl.sch.ID)
	if err != nil {
		return err
	}
	names := map[string]string{} // id → stored name
	for _, c := range classes {
		if c.ExternalID == "" {
			pl.manualClass[c.ID] = true
			continue
		}
		pl.classKey[c.ExternalID] = c.ID
		names[c.ID] = c.Name
		p.storedClasses++
	}
	for _, dc := range pl.snap.classes {
		id, ok := pl.classKey[dc.ext]
		if !ok {
			pl.classKey[dc.ext] = "new:" + dc.ext
			p.newClasses = append(p.newClasses, school.Class{SchoolID: pl.sch.ID, ExternalID: dc.ext, Name: dc.name})
			p.add("class.create", dc.ext, "", dc.dn)
			continue
		}
		if names[id] != dc.name {
			p.renames[id] = dc.name
			p.add("class.update", dc.ext, id, dc.dn, "name")
		}
	}
	return nil
}

// classesOf returns the keys (ids, or "new:"+external id) of the classes
// the entry dn is a member of, by the classes' member lists and the
// entry's memberOf, sorted.
func (pl *planner) classesOf(dn string, memberOf []string) []string {
	set := map[string]bool{}
	for _, ext := range pl.snap.memberClasses[normDN(dn)] {
		set[pl.classKey[ext]] = true
	}
	for _, m := range memberOf {
		if ext, ok := pl.snap.classByDN[m]; ok {
			set[pl.classKey[ext]] = true
		}
	}
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// guardians plans the creation and update of directory guardians.
func (pl *planner) guardians(ctx context.Context) error {
	p := pl.p
	guardians, err := pl.st.ListGuardians(ctx, pl.sch.ID)
	if err != nil {
		return err
	}
	byID := map[string]school.Guardian{}
	for _, g := range guardians {
		byID[g.ID] = g
		if g.ExternalID == "" {
			pl.manualGuardian[g.ID] = true
			continue
		}
		pl.guardianKey[g.ExternalID] = g.ID
		p.storedGuardians++
	}
	for _, dg := range pl.snap.guardians {
		id, ok := pl.guardianKey[dg.ext]
		if !ok {
			pl.guardianKey[dg.ext] = "new:" + dg.ext
			p.newGuardians = append(p.newGuardians, school.Guardian{SchoolID: pl.sch.ID, ExternalID: dg.ext, Name: dg.name, Email: dg.email})
			p.add("guardian.create", dg.ext, "", dg.dn)
			continue
		}
		old := byID[id]
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
	return nil
}

// pupils plans the creation, update and restoring of the pupils read,
// then (in a full run) the quarantine and removal of the pupils gone.
func (pl *planner) pupils(ctx context.Context) error {
	pupils, err := pl.st.ListPupils(ctx, school.PupilFilter{SchoolID: pl.sch.ID})
	if err != nil {
		return err
	}
	byExt := make(map[string]*school.Pupil, len(pupils))
	for i := range pupils {
		if pupils[i].Status == school.PupilActive {
			pl.p.activePupils++
		}
		if pupils[i].ExternalID != "" {
			byExt[pupils[i].ExternalID] = &pupils[i]
		}
	}
	for _, dp := range pl.snap.pupils {
		classes, guardians := pl.classesOf(dp.dn, dp.memberOf), pl.guardiansOf(dp)
		pl.claimPeer(dp)
		if old, ok := byExt[dp.ext]; ok {
			pl.pupilChanges(dp, old, classes, guardians)
		} else {
			pl.newPupil(dp, classes, guardians)
		}
	}
	if pl.full && pl.ro.PupilID == "" && pl.src.GuardianBase != "" {
		pl.orphanGuardians()
	}
	if pl.full {
		pl.departures(pupils)
	}
	return nil
}

// guardiansOf returns the keys of the pupil's guardians, sorted, warning
// of links to entries that are no guardian and of a pupil with none.
func (pl *planner) guardiansOf(dp dirPupil) []string {
	var keys []string
	for _, gdn := range dp.guardianDNs {
		ext, ok := pl.snap.guardianByDN[gdn]
		if !ok {
			pl.run.AddWarning(school.WarnBadGuardianLink, dp.dn, "guardian link to an entry that is not a valid guardian: "+gdn)
			continue
		}
		keys = append(keys, pl.guardianKey[ext])
	}
	sort.Strings(keys)
	keys = slices.Compact(keys)
	if len(keys) == 0 {
		pl.run.AddWarning(school.WarnNoGuardian, dp.dn, "pupil has no guardian: consent cannot be asked")
	}
	return keys
}

// claimPeer warns when another school of the same pass read a pupil with
// the same external id or uid.
func (pl *planner) claimPeer(dp dirPupil) {
	if pl.ro.Peers == nil {
		return
	}
	keys := []string{"id:" + dp.ext}
	if dp.uid != "" {
		keys = append(keys, "uid:"+dp.uid)
	}
	for _, k := range keys {
		if o, dup := pl.ro.Peers.claim(k, pl.sch.Code, dp.dn); dup {
			what, _, _ := strings.Cut(k, ":")
			pl.run.AddWarning(school.WarnDuplicateUID, dp.dn, fmt.Sprintf("the same %s is a pupil of school %s too (%s)", what, o.school, o.dn))
			return
		}
	}
}

func (pl *planner) warnNoClass(dn string, classes []string) {
	if len(classes) == 0 && pl.src.ClassBase != "" {
		pl.run.AddWarning(school.WarnNoClass, dn, "pupil is in no class: no teacher can start their enrolment")
	}
}

func (pl *planner) newPupil(dp dirPupil, classes, guardians []string) {
	pl.warnNoClass(dp.dn, classes)
	pl.p.newPupils = append(pl.p.newPupils, pupilPlan{
		p:       school.Pupil{SchoolID: pl.sch.ID, ExternalID: dp.ext, GivenName: dp.given, FamilyName: dp.family, BirthDate: dp.birth},
		classes: classes, guardian: guardians,
	})
	pl.p.add("pupil.create", dp.ext, "", dp.dn)
}

// pupilChanges plans the changes of a stored pupil read again: fields,
// links (keeping links to hand-made classes and guardians) and restoring
// one quarantined or removed. It counts active pupils' field changes for
// the field-change safety.
func (pl *planner) pupilChanges(dp dirPupil, old *school.Pupil, classes, guardians []string) {
	p := pl.p
	for _, c := range old.ClassIDs {
		if pl.manualClass[c] {
			classes = append(classes, c)
		}
	}
	for _, g := range old.GuardianIDs {
		if pl.manualGuardian[g] {
			guardians = append(guardians, g)
		}
	}
	sort.Strings(classes)
	sort.Strings(guardians)
	pl.warnNoClass(dp.dn, classes)
	var fields []string
	if old.GivenName != dp.given || old.FamilyName != dp.family {
		fields = append(fields, "name")
	}
	if !old.BirthDate.Equal(dp.birth) {
		fields = append(fields, "birthDate")
	}
	if old.Status == school.PupilActive {
		for _, f := range fields {
			p.fieldChanges[f]++
		}
		if len(old.ClassIDs) > 0 && len(classes) == 0 {
			p.fieldChanges["class"]++
		}
	}
	classesChanged, guardiansChanged := !sameSet(old.ClassIDs, classes), !sameSet(old.GuardianIDs, guardians)
	restore := old.Status != school.PupilActive
	if len(fields) == 0 && !classesChanged && !guardiansChanged && !restore {
		return
	}
	np := *old
	np.GivenName, np.FamilyName, np.BirthDate = dp.given, dp.family, dp.birth
	p.pupilUpd = append(p.pupilUpd, pupilPlan{id: old.ID, p: np, classes: classes, guardian: guardians, restore: restore})
	if restore {
		if old.Status == school.PupilRemoved {
			pl.run.AddWarning(school.WarnRestored, dp.dn, "pupil reappeared after the grace period ended; restored")
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

// orphanGuardians warns of guardians read that no pupil read points to.
func (pl *planner) orphanGuardians() {
	linked := map[string]bool{}
	for _, dp := range pl.snap.pupils {
		for _, gdn := range dp.guardianDNs {
			if ext, ok := pl.snap.guardianByDN[gdn]; ok {
				linked[ext] = true
			}
		}
	}
	for _, dg := range pl.snap.guardians {
		if !linked[dg.ext] {
			pl.run.AddWarning(school.WarnOrphanGuardian, dg.dn, "guardian of no pupil: no pupil entry points to this guardian")
		}
	}
}

// departures plans, for a full run, the quarantine of active directory
// pupils the directory no longer returns and the removal of quarantined
// ones whose grace period is over.
func (pl *planner) departures(pupils []school.Pupil) {
	for i := range pupils {
		old := &pupils[i]
		if old.ExternalID == "" || pl.snap.seenPupils[old.ExternalID] {
			continue
		}
		switch old.Status {
		case school.PupilActive:
			pl.p.quarantine = append(pl.p.quarantine, old.ID)
			pl.p.add("pupil.quarantine", old.ExternalID, old.ID, "")
		case school.PupilQuarantined:
			if !old.QuarantinedAt.IsZero() && pl.now.Sub(old.QuarantinedAt) >= pl.src.Grace {
				pl.p.remove = append(pl.p.remove, old.ID)
				pl.p.add("pupil.remove", old.ExternalID, old.ID, "")
			}
		}
	}
}

// staff plans the creation, update and enabling of the staff read and
// (in a full run) the disabling of directory staff gone. A run of one
// pupil, or a source with no staff base, leaves staff alone.
func (pl *planner) staff(ctx context.Context) error {
	if pl.src.StaffBase == "" || pl.ro.PupilID != "" {
		return nil
	}
	staff, err := pl.st.ListStaff(ctx, pl.sch.ID)
	if err != nil {
		return err
	}
	byExt := map[string]*school.Staff{}
	for i := range staff {
		if staff[i].ExternalID != "" {
			byExt[staff[i].ExternalID] = &staff[i]
			if !staff[i].Disabled {
				pl.p.directoryStaff++
			}
		}
	}
	for _, ds := range pl.snap.staff {
		classes := pl.classesOf(ds.dn, ds.memberOf)
		if old, ok := byExt[ds.ext]; ok {
			pl.staffChanges(ds, old, classes)
			continue
		}
		pl.p.newStaff = append(pl.p.newStaff, staffPlan{s: school.Staff{SchoolID: pl.sch.ID, ExternalID: ds.ext, Username: ds.username,
			Name: ds.name, Email: ds.email, Role: ds.role}, classes: classes})
		pl.p.add("staff.create", ds.ext, "", ds.dn)
	}
	if pl.full {
		for _, old := range staff {
			if old.ExternalID != "" && !old.Disabled && !pl.snap.seenStaff[old.ExternalID] {
				pl.p.disable = append(pl.p.disable, old.ID)
				pl.p.add("staff.disable", old.ExternalID, old.ID, "")
			}
		}
	}
	return nil
}

// staffChanges plans the changes of a stored staff member read again,
// keeping links to hand-made classes; a disabled one is enabled.
func (pl *planner) staffChanges(ds dirStaff, old *school.Staff, classes []string) {
	for _, c := range old.ClassIDs {
		if pl.manualClass[c] {
			classes = append(classes, c)
		}
	}
	sort.Strings(classes)
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
	if !sameSet(old.ClassIDs, classes) {
		fields = append(fields, "classes")
	}
	if len(fields) == 0 && !old.Disabled {
		return
	}
	ns := *old
	ns.Username, ns.Name, ns.Email, ns.Role = ds.username, ds.name, ds.email, ds.role
	pl.p.staffUpd = append(pl.p.staffUpd, staffPlan{id: old.ID, s: ns, oldUsername: old.Username, classes: classes, enable: old.Disabled})
	if old.Disabled {
		pl.p.add("staff.enable", ds.ext, old.ID, ds.dn)
	}
	if len(fields) > 0 {
		pl.p.add("staff.update", ds.ext, old.ID, ds.dn, fields...)
	}
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
