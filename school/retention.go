package school

import (
	"context"
	"time"
)

// PurgeKind is a kind of record the retention job deletes.
type PurgeKind string

// The kinds of record with a retention period.
const (
	// PurgeReleases deletes release log entries older than the cutoff.
	PurgeReleases PurgeKind = "releases"
	// PurgeAccess deletes access log entries older than the cutoff.
	PurgeAccess PurgeKind = "access"
	// PurgeRemovedPupils erases pupils whose status became removed (the
	// quarantine grace had passed) before the cutoff, with everything
	// that cascades from them, and writes a "pupil.erase" audit entry
	// naming only the pupil's id.
	PurgeRemovedPupils PurgeKind = "removed_pupils"
	// PurgeExpired deletes enrolment codes, consent links, finished
	// enrolment flows and delivered mail that expired or ended before the
	// cutoff, and ephemeral state (ceremonies, sessions, rate counters, and
	// the OIDC and SAML protocol state) that expired before now.
	PurgeExpired PurgeKind = "expired"
)

// PurgeKinds lists every kind, in the order the retention job runs them.
var PurgeKinds = []PurgeKind{PurgeRemovedPupils, PurgeReleases, PurgeAccess, PurgeExpired}

// RetentionStore deletes records whose retention has ended.
type RetentionStore interface {
	// Purge deletes at most batch records of kind that were due before
	// cutoff (PurgeExpired: at most batch of each table; all when batch
	// is 0), in one transaction, and returns how many it deleted (0 when
	// nothing more is due). now bounds ephemeral state for PurgeExpired.
	// Each call commits its batch together with an instance audit entry
	// ("retention.purge") recording the count, so a job interrupted
	// between calls loses nothing and counts nothing twice.
	Purge(ctx context.Context, kind PurgeKind, cutoff, now time.Time, batch int) (int64, error)
}
