package rostersync

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/elevid/elevid/school"
)

type auditDetail struct {
	Run    string   `json:"run"`
	Fields []string `json:"fields,omitempty"`
}

// applier writes one plan through q, inside the caller's transaction,
// one kind of change a step. New records of a kind are written together
// (multi-row inserts); updates, rare after the first run, one by one.
// Audit entries are collected and appended in one batch at the end.
type applier struct {
	s      *Syncer
	q      school.Queries
	sch    school.School
	run    *school.SyncRun
	p      *plan
	now    time.Time
	audits []school.AuditEntry
	ids    map[string]string // "new:"+external id → id, for classes and guardians
	// usernames holds the staff account id of every username the staff
	// steps may touch, kept current as they create and rename accounts.
	usernames map[string]string
}

// apply writes p through q, inside the caller's transaction.
func (s *Syncer) apply(ctx context.Context, q school.Queries, sch school.School, p *plan, run *school.SyncRun) error {
	a := &applier{s: s, q: q, sch: sch, run: run, p: p, now: s.opt.Now(), ids: map[string]string{}}
	steps := []func(context.Context) error{a.classes, a.guardians, a.newPupils, a.pupilUpdates, a.quarantine, a.remove,
		a.newStaff, a.staffUpdates, a.disable}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return a.finish(ctx)
}

func (a *applier) audit(action, subject string, fields ...string) {
	d, _ := json.Marshal(auditDetail{Run: a.run.ID, Fields: fields})
	a.audits = append(a.audits, school.AuditEntry{SchoolID: a.sch.ID, Time: a.now, ActorID: Actor, ActorRole: "system",
		Action: action, SubjectID: subject, Detail: string(d)})
}

// resolve turns "new:"+external id keys into the ids just created.
func (a *applier) resolve(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if id, ok := a.ids[k]; ok {
			k = id
		}
		out = append(out, k)
	}
	return out
}

func (a *applier) classes(ctx context.Context) error {
	if len(a.p.newClasses) > 0 {
		cs, err := a.q.CreateClasses(ctx, a.p.newClasses)
		if err != nil {
			return fmt.Errorf("create classes: %w", err)
		}
		for _, c := range cs {
			a.ids["new:"+c.ExternalID] = c.ID
			a.audit("class.create", c.ID)
		}
	}
	for _, id := range sortedKeys(a.p.renames) {
		name := a.p.renames[id]
		if _, err := a.q.UpdateClass(ctx, a.sch.ID, id, func(c school.Class) (school.Class, error) { c.Name = name; return c, nil }); err != nil {
			return fmt.Errorf("update class: %w", err)
		}
		a.audit("class.update", id, "name")
	}
	return nil
}

func (a *applier) guardians(ctx context.Context) error {
	if len(a.p.newGuardians) > 0 {
		gs, err := a.q.CreateGuardians(ctx, a.p.newGuardians)
		if err != nil {
			return fmt.Errorf("create guardians: %w", err)
		}
		for _, g := range gs {
			a.ids["new:"+g.ExternalID] = g.ID
			a.audit("guardian.create", g.ID)
		}
	}
	for _, id := range sortedKeys(a.p.guardianUpd) {
		want := a.p.guardianUpd[id]
		if _, err := a.q.UpdateGuardian(ctx, id, func(g school.Guardian) (school.Guardian, error) {
			g.Name, g.Email = want.Name, want.Email
			return g, nil
		}); err != nil {
			return fmt.Errorf("update guardian: %w", err)
		}
		a.audit("guardian.update", id)
	}
	return nil
}

func (a *applier) newPupils(ctx context.Context) error {
	if len(a.p.newPupils) == 0 {
		return nil
	}
	ps := make([]school.Pupil, len(a.p.newPupils))
	for i, np := range a.p.newPupils {
		np.p.ClassIDs, np.p.GuardianIDs = a.resolve(np.classes), a.resolve(np.guardian)
		ps[i] = np.p
	}
	created, err := a.q.CreatePupils(ctx, ps)
	if err != nil {
		return fmt.Errorf("create pupils: %w", err)
	}
	for _, c := range created {
		a.audit("pupil.create", c.ID)
	}
	return nil
}

func (a *applier) pupilUpdates(ctx context.Context) error {
	for _, up := range a.p.pupilUpd {
		var fields []string
		_, err := a.q.UpdatePupil(ctx, up.id, func(old school.Pupil) (school.Pupil, error) {
			nw := old
			nw.GivenName, nw.FamilyName, nw.BirthDate = up.p.GivenName, up.p.FamilyName, up.p.BirthDate
			nw.ClassIDs, nw.GuardianIDs = a.resolve(up.classes), a.resolve(up.guardian)
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
			a.audit("pupil.restore", up.id)
		}
		if len(fields) > 0 {
			a.audit("pupil.update", up.id, fields...)
		}
	}
	return nil
}

// quarantine quarantines the pupils gone and ends their access through
// the OnQuarantine hook, in the same transaction.
func (a *applier) quarantine(ctx context.Context) error {
	for _, id := range a.p.quarantine {
		if _, err := a.q.UpdatePupil(ctx, id, func(old school.Pupil) (school.Pupil, error) {
			old.Status, old.QuarantinedAt = school.PupilQuarantined, a.now
			return old, nil
		}); err != nil {
			return fmt.Errorf("quarantine pupil: %w", err)
		}
		if a.s.opt.OnQuarantine != nil {
			if err := a.s.opt.OnQuarantine(ctx, a.q, id); err != nil {
				return fmt.Errorf("quarantine hook: %w", err)
			}
		}
		a.audit("pupil.quarantine", id)
	}
	return nil
}

func (a *applier) remove(ctx context.Context) error {
	for _, id := range a.p.remove {
		if _, err := a.q.UpdatePupil(ctx, id, func(old school.Pupil) (school.Pupil, error) {
			old.Status = school.PupilRemoved
			return old, nil
		}); err != nil {
			return fmt.Errorf("remove pupil: %w", err)
		}
		a.audit("pupil.remove", id)
	}
	return nil
}

// newStaff creates the new staff members whose username no account
// holds (usernames are unique across schools); the others are skipped
// with a warning.
func (a *applier) newStaff(ctx context.Context) error {
	var names []string
	for _, ns := range a.p.newStaff {
		names = append(names, ns.s.Username)
	}
	for _, up := range a.p.staffUpd {
		names = append(names, up.s.Username)
	}
	if len(names) == 0 {
		return nil
	}
	var err error
	if a.usernames, err = a.q.StaffIDsByUsername(ctx, names); err != nil {
		return err
	}
	var create []school.Staff
	skipped := make([]bool, len(a.p.newStaff))
	for i, ns := range a.p.newStaff {
		if _, taken := a.usernames[ns.s.Username]; taken {
			skipped[i] = true
			continue
		}
		a.usernames[ns.s.Username] = "" // taken by the account created below
		ns.s.ClassIDs = a.resolve(ns.classes)
		create = append(create, ns.s)
	}
	var created []school.Staff
	if len(create) > 0 {
		if created, err = a.q.CreateStaffMembers(ctx, create); err != nil {
			return fmt.Errorf("create staff: %w", err)
		}
	}
	for _, c := range created {
		a.usernames[c.Username] = c.ID
		a.audit("staff.create", c.ID)
	}
	for i, ns := range a.p.newStaff {
		if skipped[i] {
			a.run.AddWarning(school.WarnStaffUsername, "", fmt.Sprintf("staff username %q is taken by account %s; not created", ns.s.Username, a.usernames[ns.s.Username]))
		}
	}
	return nil
}

func (a *applier) staffUpdates(ctx context.Context) error {
	for _, up := range a.p.staffUpd {
		if other, taken := a.usernames[up.s.Username]; taken && other != up.id {
			a.run.AddWarning(school.WarnStaffUsername, "", fmt.Sprintf("staff username %q is taken by account %s; not updated", up.s.Username, other))
			continue
		}
		if _, err := a.q.UpdateStaff(ctx, up.id, func(old school.Staff) (school.Staff, error) {
			old.Username, old.Name, old.Email, old.Role = up.s.Username, up.s.Name, up.s.Email, up.s.Role
			old.ClassIDs = a.resolve(up.classes)
			old.Disabled = false
			return old, nil
		}); err != nil {
			return fmt.Errorf("update staff: %w", err)
		}
		if up.oldUsername != up.s.Username {
			delete(a.usernames, up.oldUsername)
			a.usernames[up.s.Username] = up.id
		}
		if up.enable {
			a.audit("staff.enable", up.id)
		}
		a.audit("staff.update", up.id)
	}
	return nil
}

func (a *applier) disable(ctx context.Context) error {
	for _, id := range a.p.disable {
		if _, err := a.q.UpdateStaff(ctx, id, func(old school.Staff) (school.Staff, error) {
			old.Disabled = true
			return old, nil
		}); err != nil {
			return fmt.Errorf("disable staff: %w", err)
		}
		a.audit("staff.disable", id)
	}
	return nil
}

// finish appends the run's summary entry and every collected audit entry.
func (a *applier) finish(ctx context.Context) error {
	counts := map[string]int{}
	for _, c := range a.p.changes {
		counts[c.Action]++
	}
	d, _ := json.Marshal(struct {
		Run    string          `json:"run"`
		Mode   school.SyncMode `json:"mode"`
		Forced bool            `json:"forced,omitempty"`
		Counts map[string]int  `json:"counts"`
	}{a.run.ID, a.run.Mode, a.run.Forced, counts})
	a.audits = append(a.audits, school.AuditEntry{SchoolID: a.sch.ID, Time: a.now, ActorID: Actor, ActorRole: "system",
		Action: "sync.apply", SubjectID: a.run.ID, Detail: string(d)})
	return a.q.AppendAudits(ctx, a.audits)
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
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
