package rostersync

import (
	"fmt"

	"github.com/elevid/elevid/school"
)

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
