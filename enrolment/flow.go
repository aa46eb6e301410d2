package enrolment

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/elevid/elevid/school"
)

// transitions lists the legal moves of the enrolment flow. A final state
// (denied, expired, withdrawn) has none: only a new Start leaves it.
var transitions = map[school.EnrolmentState][]school.EnrolmentState{
	school.EnrolmentRequested:       {school.EnrolmentAwaitingConsent, school.EnrolmentConsented, school.EnrolmentExpired},
	school.EnrolmentAwaitingConsent: {school.EnrolmentConsented, school.EnrolmentDenied, school.EnrolmentExpired},
	school.EnrolmentConsented:       {school.EnrolmentCodeIssued, school.EnrolmentWithdrawn},
	school.EnrolmentCodeIssued:      {school.EnrolmentCodeIssued, school.EnrolmentEnrolled, school.EnrolmentWithdrawn},
	school.EnrolmentEnrolled:        {school.EnrolmentCodeIssued, school.EnrolmentWithdrawn},
}

// ErrTransition is wrapped by errors for a move the flow does not allow.
var ErrTransition = errors.New("enrolment: illegal transition")

// CanMove reports whether the flow may go from one state to another.
func CanMove(from, to school.EnrolmentState) bool {
	return slices.Contains(transitions[from], to)
}

// Actor is who acts on a flow, for access checks and the audit log.
type Actor struct {
	ID       string // staff id, or "guardian:<id>", "system"
	Role     school.Role
	SchoolID string   // empty for operators
	ClassIDs []string // a teacher's classes
	Remote   string   // client address, if any
}

// StaffActor returns the Actor of a signed-in staff member.
func StaffActor(s school.Staff, remote string) Actor {
	return Actor{ID: s.ID, Role: s.Role, SchoolID: s.SchoolID, ClassIDs: s.ClassIDs, Remote: remote}
}

// ErrForbidden is wrapped by errors for an actor who may not act on the
// pupil: another school's, or a teacher's pupil outside their classes.
var ErrForbidden = errors.New("enrolment: not allowed for this actor")

// mayActOn reports whether a may start or manage p's enrolment: operators
// any pupil, school admins their school's, teachers their classes'.
func (a Actor) mayActOn(p school.Pupil) bool {
	switch a.Role {
	case school.RoleOperator:
		return true
	case school.RoleSchoolAdmin:
		return a.SchoolID == p.SchoolID
	case school.RoleTeacher:
		if a.SchoolID != p.SchoolID {
			return false
		}
		for _, c := range p.ClassIDs {
			if slices.Contains(a.ClassIDs, c) {
				return true
			}
		}
	}
	return false
}

// ConsentRequest is what a ConsentRequester gets when a flow needs
// guardians' consent.
type ConsentRequest struct {
	School    school.School
	Pupil     school.Pupil
	Guardians []school.Guardian // those with an e-mail address
	ExpiresAt time.Time
}

// ConsentRequester sends the consent requests of a starting flow (package
// guardian implements it). It runs in the flow's transaction through q, so
// the requests (links, outbox mail) exist exactly when the flow does.
type ConsentRequester interface {
	RequestConsent(ctx context.Context, q school.Queries, r ConsentRequest) error
}

// FlowOptions configure Flows.
type FlowOptions struct {
	Store school.Store
	// Sealer keys the stored form of enrolment codes (Hash); required.
	Sealer    *school.Sealer
	Policy    Policy
	Requester ConsentRequester
	// ConsentTTL is how long a flow waits for consent (and consent links
	// are valid): config enrolment.consent_link_ttl, 7 days when zero.
	ConsentTTL time.Duration
	// CodeTTL is how long an enrolment code is valid; 7 days when zero.
	CodeTTL time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Flows runs pupils' enrolment flows: start (for one pupil or a class),
// lazy expiry, code issue, and re-evaluation after guardians decide.
type Flows struct{ opt FlowOptions }

// NewFlows returns Flows for opt; Store, Sealer and Requester are
// required.
func NewFlows(opt FlowOptions) (*Flows, error) {
	if opt.Store == nil || opt.Requester == nil || opt.Sealer == nil {
		return nil, errors.New("enrolment: flows need a store, a sealer and a consent requester")
	}
	if opt.Policy == (Policy{}) {
		opt.Policy = DefaultPolicy()
	}
	if opt.ConsentTTL <= 0 {
		opt.ConsentTTL = 7 * 24 * time.Hour
	}
	if opt.CodeTTL <= 0 {
		opt.CodeTTL = 7 * 24 * time.Hour
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	return &Flows{opt: opt}, nil
}

// Policy returns the age policy in force.
func (f *Flows) Policy() Policy { return f.opt.Policy }

// ErrNoGuardian is wrapped by Start's per-pupil error when consent is
// needed but no guardian on record (or, under "all", not every guardian)
// has an e-mail address.
var ErrNoGuardian = errors.New("enrolment: no guardian with an e-mail address on record")

// StartResult is the outcome of starting one pupil's flow.
type StartResult struct {
	PupilID string
	State   school.EnrolmentState // the state after the call
	Already bool                  // a flow was under way; nothing changed
	Err     error                 // ErrNoBirthDate, ErrOutsideAge, ErrNoGuardian, ErrForbidden, school.ErrNotFound …
}

// Start starts enrolment for each pupil, each in its own transaction: the
// policy is applied, and the guardians are asked for consent (or, for a
// pupil old enough, the flow is consented at once). A pupil whose flow is
// under way is left alone; a finished (denied, expired, withdrawn) flow
// starts afresh, and earlier decisions are cleared. The error is for
// failures of the store; per-pupil refusals are in the results.
func (f *Flows) Start(ctx context.Context, a Actor, pupilIDs []string) ([]StartResult, error) {
	out := make([]StartResult, 0, len(pupilIDs))
	for _, id := range pupilIDs {
		res := StartResult{PupilID: id}
		err := f.opt.Store.InTx(ctx, func(q school.Queries) error {
			var err error
			res, err = f.startOne(ctx, q, a, id)
			return err
		})
		if err != nil {
			var refusal *refused
			if !errors.As(err, &refusal) {
				return out, fmt.Errorf("enrolment: start: %w", err)
			}
			res = StartResult{PupilID: id, Err: refusal.err}
			if refusal.code != "not_found" {
				_ = f.audit(ctx, f.opt.Store, a, "", id, "enrolment.refused", fmt.Sprintf(`{"reason":%q}`, refusal.code))
			}
		}
		out = append(out, res)
	}
	return out, nil
}

// StartClass starts enrolment for every active pupil of a class.
func (f *Flows) StartClass(ctx context.Context, a Actor, schoolID, classID string) ([]StartResult, error) {
	if _, err := f.opt.Store.GetClass(ctx, schoolID, classID); err != nil {
		return nil, fmt.Errorf("enrolment: start class: %w", err)
	}
	pupils, err := f.opt.Store.ListPupils(ctx, school.PupilFilter{SchoolID: schoolID, ClassID: classID, Status: school.PupilActive})
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(pupils))
	for i, p := range pupils {
		ids[i] = p.ID
	}
	return f.Start(ctx, a, ids)
}

// refused is a per-pupil refusal: it rolls the pupil's transaction back
// and is reported in the result.
type refused struct {
	err  error
	code string
}

func (r *refused) Error() string { return r.err.Error() }

func (f *Flows) startOne(ctx context.Context, q school.Queries, a Actor, pupilID string) (StartResult, error) {
	res := StartResult{PupilID: pupilID}
	now := f.opt.Now()
	p, err := q.GetPupil(ctx, pupilID)
	if errors.Is(err, school.ErrNotFound) || (err == nil && !a.mayActOn(p)) {
		// The same answer for another school's pupil and an unknown id.
		return res, &refused{err: fmt.Errorf("%w: pupil", school.ErrNotFound), code: "not_found"}
	}
	if err != nil {
		return res, err
	}
	if p.Status != school.PupilActive {
		return res, &refused{err: fmt.Errorf("%w: pupil is %s", school.ErrInvalid, p.Status), code: "inactive"}
	}
	if e, err := f.current(ctx, q, p.ID, now); err == nil && e.Valid(now) {
		res.State, res.Already = e.State, true
		return res, nil
	} else if err != nil && !errors.Is(err, school.ErrNotFound) {
		return res, err
	}
	as, err := f.opt.Policy.Assess(p, now)
	switch {
	case errors.Is(err, ErrNoBirthDate):
		return res, &refused{err: err, code: "no_birth_date"}
	case errors.Is(err, ErrOutsideAge):
		return res, &refused{err: err, code: "outside_age"}
	case err != nil:
		return res, err
	}
	var guardians []school.Guardian
	if as.Rule != school.ConsentNone {
		all, err := q.GuardiansOf(ctx, p.ID)
		if err != nil {
			return res, err
		}
		for _, g := range all {
			if g.Email != "" && school.ValidEmail(g.Email) == nil {
				guardians = append(guardians, g)
			}
		}
		if len(guardians) == 0 || (as.Rule == school.ConsentAll && len(guardians) != len(all)) {
			return res, &refused{err: ErrNoGuardian, code: "no_guardian"}
		}
	}
	// A restart never erases a guardian's decision: a "no" stands until
	// the guardian changes it (the consent page shows it and asks again).
	e, err := q.PutEnrolment(ctx, school.Enrolment{
		PupilID: p.ID, State: school.EnrolmentRequested, Rule: as.Rule, Age: as.Age, Flagged: as.Flagged,
		StartedBy: a.ID, ExpiresAt: now.Add(f.opt.ConsentTTL),
	})
	if err != nil {
		return res, err
	}
	if err := f.audit(ctx, q, a, p.SchoolID, p.ID, "enrolment.requested", fmt.Sprintf(`{"rule":%q,"flagged":%t}`, as.Rule, as.Flagged)); err != nil {
		return res, err
	}
	if as.Rule == school.ConsentNone {
		e, err = Move(ctx, q, a, p.ID, school.EnrolmentConsented, now)
	} else {
		sch, err2 := q.GetSchool(ctx, p.SchoolID)
		if err2 != nil {
			return res, err2
		}
		if err := f.opt.Requester.RequestConsent(ctx, q, ConsentRequest{School: sch, Pupil: p, Guardians: guardians, ExpiresAt: e.ExpiresAt}); err != nil {
			return res, err
		}
		e, err = Move(ctx, q, a, p.ID, school.EnrolmentAwaitingConsent, now)
	}
	res.State = e.State
	return res, err
}

// Move performs one legal transition of a pupil's flow inside q's
// transaction and records it in the audit log: ErrTransition for an
// illegal move. Leaving the waiting states clears ExpiresAt.
func Move(ctx context.Context, q school.Queries, a Actor, pupilID string, to school.EnrolmentState, now time.Time) (school.Enrolment, error) {
	var from school.EnrolmentState
	e, err := q.UpdateEnrolment(ctx, pupilID, func(e school.Enrolment) (school.Enrolment, error) {
		from = e.State
		if !CanMove(e.State, to) {
			return e, fmt.Errorf("%w: %s → %s", ErrTransition, e.State, to)
		}
		e.State = to
		if to != school.EnrolmentAwaitingConsent && to != school.EnrolmentRequested {
			e.ExpiresAt = time.Time{}
		}
		return e, nil
	})
	if err != nil {
		return e, err
	}
	_, err = q.AppendAudit(ctx, school.AuditEntry{
		SchoolID: e.SchoolID, Time: now, ActorID: a.ID, ActorRole: string(a.Role), Action: "enrolment." + string(to),
		SubjectID: pupilID, Detail: fmt.Sprintf(`{"from":%q,"to":%q}`, from, to), Remote: a.Remote,
	})
	return e, err
}

func (f *Flows) audit(ctx context.Context, q school.Queries, a Actor, schoolID, subject, action, detail string) error {
	if schoolID == "" {
		p, err := q.GetPupil(ctx, subject)
		if err != nil {
			return nil // nothing to attach the entry to
		}
		schoolID = p.SchoolID
	}
	_, err := q.AppendAudit(ctx, school.AuditEntry{SchoolID: schoolID, Time: f.opt.Now(), ActorID: a.ID, ActorRole: string(a.Role),
		Action: action, SubjectID: subject, Detail: detail, Remote: a.Remote})
	if err != nil {
		f.opt.Logger.Error("enrolment: audit", "action", action, "err", err)
	}
	return err
}

// System is the actor of transitions nobody asked for (expiry, a passkey
// registered).
var System = Actor{ID: "system", Role: "system"}

// current returns the pupil's flow, first applying what time and
// registrations have done: a waiting flow past ExpiresAt becomes expired,
// a code_issued flow of a pupil with a passkey becomes enrolled.
func (f *Flows) current(ctx context.Context, q school.Queries, pupilID string, now time.Time) (school.Enrolment, error) {
	e, err := q.GetEnrolment(ctx, pupilID)
	if err != nil {
		return e, err
	}
	return Settle(ctx, q, e, now)
}

// Settle applies lazy transitions to e inside q's transaction: expiry of a
// waiting flow, and enrolled once a code_issued pupil holds an active
// passkey (whether or not another code is still out).
func Settle(ctx context.Context, q school.Queries, e school.Enrolment, now time.Time) (school.Enrolment, error) {
	switch {
	case (e.State == school.EnrolmentAwaitingConsent || e.State == school.EnrolmentRequested) && !e.Valid(now):
		return Move(ctx, q, System, e.PupilID, school.EnrolmentExpired, now)
	case e.State == school.EnrolmentCodeIssued:
		creds, err := q.ListCredentials(ctx, school.PupilOwner(e.PupilID), false)
		if err != nil {
			return e, err
		}
		// A pupil with a passkey is enrolled, even while a code from a
		// re-printed sheet is still out.
		if len(creds) > 0 {
			return Move(ctx, q, System, e.PupilID, school.EnrolmentEnrolled, now)
		}
	}
	return e, nil
}

// Get returns the pupil's flow with lazy transitions applied;
// school.ErrNotFound when none was started.
func (f *Flows) Get(ctx context.Context, pupilID string) (school.Enrolment, error) {
	var e school.Enrolment
	err := f.opt.Store.InTx(ctx, func(q school.Queries) error {
		var err error
		e, err = f.current(ctx, q, pupilID, f.opt.Now())
		return err
	})
	return e, err
}

// List returns the flows of a school's pupils with lazy transitions
// applied.
func (f *Flows) List(ctx context.Context, schoolID string) ([]school.Enrolment, error) {
	all, err := f.opt.Store.ListEnrolments(ctx, schoolID)
	if err != nil {
		return nil, err
	}
	for i, e := range all {
		if e.State == school.EnrolmentCodeIssued || e.State == school.EnrolmentAwaitingConsent || e.State == school.EnrolmentRequested {
			if all[i], err = f.Get(ctx, e.PupilID); err != nil {
				return nil, err
			}
		}
	}
	return all, nil
}

// IssueCode issues a new enrolment code for a pupil whose flow is
// consented (or has a code, or is enrolled: a re-issue), moves the flow to
// code_issued, and returns the code, which is not stored. ErrForbidden for
// an actor outside the pupil's school or classes; school.ErrInvalid when
// consent is not in place.
func (f *Flows) IssueCode(ctx context.Context, a Actor, pupilID string) (string, time.Time, error) {
	var code string
	var exp time.Time
	err := f.opt.Store.InTx(ctx, func(q school.Queries) error {
		var err error
		code, exp, err = f.IssueCodeTx(ctx, q, a, pupilID)
		return err
	})
	return code, exp, err
}

// IssueCodeTx is IssueCode inside the caller's transaction.
func (f *Flows) IssueCodeTx(ctx context.Context, q school.Queries, a Actor, pupilID string) (string, time.Time, error) {
	now := f.opt.Now()
	p, err := q.GetPupil(ctx, pupilID)
	if err != nil {
		return "", time.Time{}, err
	}
	if !a.mayActOn(p) {
		return "", time.Time{}, ErrForbidden
	}
	e, err := f.current(ctx, q, pupilID, now)
	if errors.Is(err, school.ErrNotFound) {
		return "", time.Time{}, fmt.Errorf("%w: enrolment not started", school.ErrInvalid)
	}
	if err != nil {
		return "", time.Time{}, err
	}
	if !e.State.Allows() {
		return "", time.Time{}, fmt.Errorf("%w: enrolment is %s", school.ErrInvalid, e.State)
	}
	code := NewCode()
	norm, _ := Normalize(code)
	c, err := q.CreateEnrolmentCode(ctx, school.EnrolmentCode{Hash: Hash(f.opt.Sealer, norm), Locator: Locator(norm), PupilID: pupilID, CreatedBy: a.ID, ExpiresAt: now.Add(f.opt.CodeTTL)})
	if err != nil {
		return "", time.Time{}, err
	}
	if _, err := Move(ctx, q, a, pupilID, school.EnrolmentCodeIssued, now); err != nil {
		return "", time.Time{}, err
	}
	return code, c.ExpiresAt, nil
}

// MarkEnrolled moves a code_issued flow to enrolled once the pupil holds
// a passkey; the passkey registration calls it (Get does it lazily too).
func (f *Flows) MarkEnrolled(ctx context.Context, pupilID string) error {
	_, err := f.Get(ctx, pupilID)
	if errors.Is(err, school.ErrNotFound) {
		return nil
	}
	return err
}
