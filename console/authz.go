package console

import (
	"errors"
	"slices"
	"time"

	"github.com/elevid/elevid/school"
)

// Principal is the signed-in staff member a request acts for.
type Principal struct {
	StaffID  string
	Username string
	Name     string
	Role     school.Role
	SchoolID string   // empty for operators
	ClassIDs []string // a teacher's classes
	// SessionRef names the session (for re-authentication).
	SessionRef string
	// AuthTime is when the staff member signed in to this session.
	AuthTime time.Time
}

// Action is something a staff member may try in the console.
type Action string

// Console actions. Each handler names exactly one before it reads or
// changes anything.
const (
	ViewSchool      Action = "school.view"      // the school overview and class list
	ViewClass       Action = "class.view"       // a class's pupils with their status
	EnrolClass      Action = "class.enrol"      // start enrolment, print a sheet
	ViewPupil       Action = "pupil.view"       // a pupil's passkeys
	ResetPasskeys   Action = "pupil.reset"      // revoke passkeys, issue a new code
	ExportPupil     Action = "pupil.export"     // everything held about a pupil (subject access request)
	ManageDirectory Action = "directory.manage" // directory source settings, test connection
	RunSync         Action = "sync.run"         // view, dry-run and apply syncs
	ManageStaff     Action = "staff.manage"     // invite, list and disable staff
	ViewAudit       Action = "audit.view"       // the school's audit log
	// ActivatePlatforms: choose the learning platforms the school uses.
	ActivatePlatforms Action = "platforms.activate"
	ManageSchools     Action = "schools.manage"   // operator: schools
	ManagePlatforms   Action = "platforms.manage" // operator: learning platforms
	ViewInstance      Action = "instance.view"    // operator: the instance audit chain
)

// Target is what an action is tried on. SchoolID is the school of the
// record as stored (never taken from the request alone); ClassIDs are the
// classes of the record (the class itself, or a pupil's classes).
type Target struct {
	SchoolID string
	ClassIDs []string
}

// Errors of Authorize. ErrHidden is answered with 404, so that ids of
// other schools or classes are indistinguishable from unknown ids;
// ErrForbidden with 403, for actions the role never allows on a record the
// staff member may see.
var (
	ErrHidden    = errors.New("console: not visible to this staff member")
	ErrForbidden = errors.New("console: not allowed for this role")
)

// roleActions lists what each school role may do within its scope.
var roleActions = map[school.Role][]Action{
	school.RoleSchoolAdmin: {ViewSchool, ViewClass, EnrolClass, ViewPupil, ResetPasskeys, ExportPupil, ManageDirectory, RunSync, ManageStaff, ViewAudit, ActivatePlatforms},
	school.RoleTeacher:     {ViewSchool, ViewClass, EnrolClass, ViewPupil, ResetPasskeys},
}

// classScoped are the actions a teacher may take only on their own classes.
var classScoped = []Action{ViewClass, EnrolClass, ViewPupil, ResetPasskeys}

// Authorize is the one place that decides whether p may take action a on
// t. Operators may do everything. Other staff: a record of another school
// is ErrHidden; an action outside the role is ErrForbidden; a teacher's
// class-scoped action on a record outside their classes is ErrHidden.
func Authorize(p Principal, a Action, t Target) error {
	if p.StaffID == "" || !p.Role.Valid() {
		return ErrForbidden
	}
	if p.Role == school.RoleOperator {
		return nil
	}
	switch a {
	case ManageSchools, ManagePlatforms, ViewInstance:
		return ErrForbidden
	}
	if p.SchoolID == "" || t.SchoolID != p.SchoolID {
		return ErrHidden
	}
	if !slices.Contains(roleActions[p.Role], a) {
		return ErrForbidden
	}
	if p.Role == school.RoleTeacher && slices.Contains(classScoped, a) {
		for _, c := range t.ClassIDs {
			if slices.Contains(p.ClassIDs, c) {
				return nil
			}
		}
		return ErrHidden
	}
	return nil
}
