// Package rostersync mirrors a school's LDAP directory (OpenLDAP or Active
// Directory) into the store: classes, guardians, staff and pupils.
//
// A run binds to the school's DirectorySource, reads classes, guardians,
// staff and pupils with paged searches (RFC 2696, paged by hand: one new
// request per page, each page processed as it arrives), maps and validates
// every entry (a bad entry is skipped with a warning naming its DN),
// computes a diff against the store and applies it in one transaction,
// with one audit entry per change (actor "sync", ids only).
//
// The diff (plan.go) reads each kind of stored record of the school in
// one listing, whatever the school's size, and compares before writing:
// a run that finds nothing changed writes only its run record, its lock
// and one audit entry. The apply (apply.go) writes new classes,
// guardians, pupils and staff in multi-row inserts and the rarer updates
// one by one. Both are named steps, one kind of record each.
//
// The stable external id is entryUUID (OpenLDAP) or objectGUID (AD),
// never the DN, so renames and moves keep the pupil with their passkeys
// and consents.
//
// # Many schools, one directory
//
// A source's base DNs may hold {school} (the school's code) and its
// SchoolAttr names an attribute holding the code; either lets one
// directory serve many schools, set for all with `sync source set
// --all-schools`. Syncer.RunAll (`elevid sync --all`) and the Scheduler
// run several schools at once, sharing a Peers that reports a pupil
// (uid or external id) found in two schools.
//
// When the pupil, guardian and staff bases are siblings (children of one
// entry, such as ou=pupils / ou=guardians / ou=staff under the school's
// OU) and share one filter, a run reads them with one subtree search of
// that parent, giving each entry to the kind whose base holds it and
// skipping entries elsewhere under the parent. OpenLDAP's back-mdb checks
// the scope of every candidate of a subtree search, and a person filter's
// candidates are all the directory's people: in a 50-school directory of
// 220,000 people, three searches per school made slapd spend ~30 s of CPU
// on a no-change run of every school, one search ~9 s (reader.readPeople).
//
// # Interruptions
//
// A run holds its school's lock as a lease renewed every third of
// Options.LockTTL (20 s): a killed process blocks the school for at most
// that long. The next run (or the Scheduler's check) marks runs left
// "running" as interrupted. The apply transaction is all or nothing.
//
// # Warnings
//
// Every warning has a kind (school.Warn…); a run keeps the first
// school.MaxSyncWarningsPerKind of each and counts them all, so a rare
// kind is never buried under a common one.
//
// # Deprovisioning safeties
//
//   - Pupils gone from the directory are quarantined (Options.OnQuarantine
//     runs in the transaction; cmd/elevid ends the pupil's access there
//     through school/access) and only marked removed
//     after the source's grace period; reappearing restores them.
//   - A run that would quarantine more than MaxDeletePercent % of the
//     active pupils or more than MaxDeletions stops before applying
//     anything (status aborted_threshold) unless forced; staff disables
//     are bounded the same way.
//   - A full search that returns no pupils (staff, guardians, classes) while the store
//     has some fails, even forced; any search, bind, TLS or limit
//     error fails the run and nothing is applied.
//   - A run that would change or clear the date of birth or the name of
//     more than MaxDeletePercent % of the active pupils (and more than
//     10), or leave that share in no class, stops the same way: a changed
//     attribute mapping must not wipe a field silently.
//   - An entry skipped for invalid data still counts as present. An
//     invalid date of birth does not skip the pupil: it is imported
//     without one, with a warning.
//   - Incremental runs (modifyTimestamp / whenChanged) never remove anyone;
//     schedule full runs to catch deletions. An incremental run does not
//     see a class membership change made only on the group entry of a pupil
//     that did not change itself; the next full run does.
//   - Configured filters are validated with ldap.CompileFilter; values put
//     into filters are escaped with ldap.EscapeFilter (binary GUIDs byte by
//     byte).
//
// # OpenLDAP schema (preset "openldap")
//
// Pupils, staff and guardians are inetOrgPerson entries:
//
//	entryUUID          external id (operational, always present)
//	givenName, sn      names (givenName required for pupils)
//	cn                 full name of guardians and staff
//	mail               e-mail (guardians, staff)
//	uid                staff login name (suffixed "@" + school domain)
//	employeeType       staff role: "admin" makes a school admin, else teacher
//	schacDateOfBirth   pupil's date of birth, YYYYMMDD (SCHAC; auxiliary
//	                   class schacPersonalCharacteristics)
//	seeAlso            pupil → guardian entry DNs (in person's MAY list)
//	memberOf           optional, from the memberof overlay
//
// Classes are groupOfNames entries (cn = class name, member = pupil and
// teacher DNs). testdata/elevid-schac.ldif is the SCHAC subset for slapd's
// cn=config (testdata/elevid-schac.schema for slapd.conf); skip it when the
// full SCHAC schema is loaded already.
//
// # Active Directory (preset "ad")
//
// objectGUID (16 bytes, little-endian-mixed, decoded to the canonical
// UUID string), userPrincipalName (staff login), givenName, sn,
// displayName, mail, employeeType, msDS-cloudExtensionAttribute1 (date of
// birth, YYYYMMDD or YYYY-MM-DD), seeAlso (guardian links), memberOf, and
// group member lists read with range retrieval (member;range=0-1499 …).
//
// A plain AD schema has no date-of-birth attribute; the preset uses
// msDS-cloudExtensionAttribute1, one of the twenty free string attributes
// every AD schema has had since Windows Server 2012 (extensionAttribute1–15
// exist only where Exchange extended the schema). A school that keeps the
// date elsewhere names it (--attr birthDate=ATTR); `sync source set`
// reads the directory's schema (subschemaSubentry) and refuses an
// attribute the directory does not have.
//
// Every attribute can be overridden per school (DirectorySource.Attributes,
// keys AttrID … AttrModified).
//
// The package depends on package school and go-ldap; package school never
// imports LDAP.
package rostersync
