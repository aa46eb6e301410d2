package rostersync

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
)

type dirClass struct {
	ext, dn, name string
}

type dirGuardian struct {
	ext, dn, name, email string
}

type dirPupil struct {
	ext, dn, given, family string
	uid                    string // login name (AttrUsername), lower case; may be empty
	birth                  time.Time
	guardianDNs            []string // normalized
	memberOf               []string // normalized
}

type dirStaff struct {
	ext, dn, username, name, email string
	role                           school.Role
	memberOf                       []string
}

// snapshot is what one run read from the directory.
type snapshot struct {
	classes       []dirClass
	memberClasses map[string][]string // normalized member DN → class external ids
	classByDN     map[string]string   // normalized class DN → external id
	guardians     []dirGuardian
	guardianByDN  map[string]string // normalized DN → external id
	pupils        []dirPupil
	staff         []dirStaff
	// seenPupils/seenStaff hold every external id the directory returned,
	// including entries skipped as invalid: a pupil whose entry is merely
	// broken is not gone.
	seenPupils, seenStaff map[string]bool
	pupilEntries          int
	staffEntries          int
	classEntries          int
	guardianEntries       int
	entries, pages        int
}

// reader reads a snapshot over one connection.
type reader struct {
	conn     *dirConn
	src      school.DirectorySource
	am       attrMap
	run      *school.SyncRun
	now      time.Time
	progress func(Progress)
	snap     *snapshot
	domain   string // the school's domain, appended to bare staff usernames
	// seenGuardians holds the guardians' external ids read so far;
	// dupStaff and dupPupils the staff and pupil ids read twice.
	seenGuardians, dupStaff, dupPupils map[string]bool
}

func (r *reader) stats(phase string) pageStats {
	return func(n int) {
		r.snap.entries += n
		r.snap.pages++
		if r.progress != nil {
			r.progress(Progress{Phase: phase, Entries: r.snap.entries, Pages: r.snap.pages})
		}
	}
}

// entryID extracts and validates the stable external id of e.
func (r *reader) entryID(e *ldap.Entry) (string, error) {
	attr := r.am.get(AttrID)
	if r.am.BinaryID {
		vs := e.GetEqualFoldRawAttributeValues(attr)
		if len(vs) != 1 {
			return "", fmt.Errorf("has %d values of %s, want 1", len(vs), attr)
		}
		id, err := DecodeGUID(vs[0])
		if err != nil {
			return "", fmt.Errorf("malformed %s: %v", attr, err)
		}
		return id, nil
	}
	vs := e.GetEqualFoldAttributeValues(attr)
	if len(vs) != 1 || strings.TrimSpace(vs[0]) == "" {
		return "", fmt.Errorf("has %d values of %s, want 1", len(vs), attr)
	}
	if strings.EqualFold(attr, "entryUUID") {
		id, err := normalizeUUID(vs[0])
		if err != nil {
			return "", fmt.Errorf("malformed %s: %v", attr, err)
		}
		return id, nil
	}
	if len(vs[0]) > 200 {
		return "", fmt.Errorf("%s is too long", attr)
	}
	return vs[0], nil
}

func (r *reader) one(e *ldap.Entry, key string) string {
	return strings.TrimSpace(e.GetEqualFoldAttributeValue(r.am.get(key)))
}

func (r *reader) dns(e *ldap.Entry, key string) []string {
	vs := e.GetEqualFoldAttributeValues(r.am.get(key))
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if !utf8.ValidString(v) {
			continue // names no entry ElevID reads
		}
		if n := normDN(v); n != "" {
			out = append(out, n)
		}
	}
	return out
}

// warn records a sync warning about the entry dn (made valid UTF-8: the
// warning is stored and shown).
func (r *reader) warn(kind, dn, msg string) {
	r.run.AddWarning(kind, strings.ToValidUTF8(dn, "\uFFFD"), strings.ToValidUTF8(msg, "\uFFFD"))
}

// badText returns the first of the mapped attributes (keys), or "DN",
// whose value is not valid UTF-8; "" when all are. Such text is never
// imported: the entry is skipped with a warning.
func (r *reader) badText(e *ldap.Entry, keys ...string) string {
	if !utf8.ValidString(e.DN) {
		return "DN"
	}
	for _, k := range keys {
		name := r.am.get(k)
		for _, v := range e.GetEqualFoldAttributeValues(name) {
			if !utf8.ValidString(v) {
				return name
			}
		}
	}
	return ""
}

func filterOr(f, def string) string {
	if f == "" {
		return def
	}
	return f
}

// and combines a configured filter with an extra clause.
func and(f, extra string) string {
	if extra == "" {
		return f
	}
	return "(&" + f + extra + ")"
}

// readClasses reads every class group with its members (following range
// retrieval).
func (r *reader) readClasses(ctx context.Context) error {
	s := r.snap
	s.memberClasses = map[string][]string{}
	s.classByDN = map[string]string{}
	if r.src.ClassBase == "" {
		return nil
	}
	seen := map[string]string{}
	attrs := append(r.am.names(AttrID, AttrClassName), r.am.get(AttrMember))
	return r.conn.search(ctx, r.src.ClassBase, filterOr(r.src.ClassFilter, r.am.GroupFilter), attrs, r.stats("classes"), func(e *ldap.Entry) error {
		s.classEntries++
		id, err := r.entryID(e)
		if err != nil {
			r.warn(school.WarnSkipped, e.DN, "class skipped: "+err.Error())
			return nil
		}
		if prev, dup := seen[id]; dup {
			r.warn(school.WarnDuplicateID, e.DN, "class skipped: duplicate external id (also "+prev+")")
			return nil
		}
		seen[id] = e.DN
		if bad := r.badText(e, AttrClassName); bad != "" {
			r.warn(school.WarnSkipped, e.DN, "class skipped: "+bad+" is not valid UTF-8 text")
			return nil
		}
		name := r.one(e, AttrClassName)
		if name == "" {
			r.warn(school.WarnSkipped, e.DN, "class skipped: no name")
			return nil
		}
		members, err := r.conn.rangedValues(e, r.am.get(AttrMember))
		if err != nil {
			return err
		}
		s.classes = append(s.classes, dirClass{ext: id, dn: e.DN, name: name})
		s.classByDN[normDN(e.DN)] = id
		for _, m := range members {
			if n := normDN(m); n != "" {
				s.memberClasses[n] = append(s.memberClasses[n], id)
			}
		}
		return nil
	})
}

func (r *reader) guardianAttrs() []string {
	return r.am.names(AttrID, AttrDisplayName, AttrGivenName, AttrFamilyName, AttrEmail)
}

// guardian maps a guardian entry; ok is false (with a warning) when it is
// skipped.
func (r *reader) guardian(e *ldap.Entry) (dirGuardian, bool) {
	id, err := r.entryID(e)
	if err != nil {
		r.warn(school.WarnSkipped, e.DN, "guardian skipped: "+err.Error())
		return dirGuardian{}, false
	}
	if bad := r.badText(e, AttrDisplayName, AttrGivenName, AttrFamilyName, AttrEmail); bad != "" {
		r.warn(school.WarnSkipped, e.DN, "guardian skipped: "+bad+" is not valid UTF-8 text")
		return dirGuardian{}, false
	}
	g := dirGuardian{ext: id, dn: e.DN, name: r.one(e, AttrDisplayName), email: r.one(e, AttrEmail)}
	if g.name == "" {
		g.name = strings.TrimSpace(r.one(e, AttrGivenName) + " " + r.one(e, AttrFamilyName))
	}
	if g.email == "" {
		r.warn(school.WarnNoEmail, e.DN, "guardian has no e-mail address: consent cannot be asked")
	} else if err := school.ValidEmail(g.email); err != nil {
		r.warn(school.WarnSkipped, e.DN, "guardian skipped: invalid e-mail address")
		return dirGuardian{}, false
	}
	return g, true
}

// person is one kind of person entry the reader reads: where, with which
// filter and attributes, and what it does with each entry.
type person struct {
	phase  string // progress phase: "guardians", "staff" or "pupils"
	base   string
	filter string
	attrs  []string
	entry  func(*ldap.Entry) error
}

// readPeople reads guardians, staff and pupils (only pupils when
// pupilsOnly), then drops the staff and pupils whose external id the
// directory returned twice.
//
// Kinds whose bases are siblings under one parent entry and whose
// filters are the same are read with one subtree search of that parent,
// each entry going to the kind whose base holds it (entries elsewhere
// under the parent are skipped). OpenLDAP's back-mdb checks the scope of
// every candidate of a subtree search, and a person filter's candidates
// are every person in the directory: in a municipality's directory the
// three searches per school cost three passes over 220,000 people, one
// search costs one.
func (r *reader) readPeople(ctx context.Context, extraPerson, extraPupil string, pupilsOnly bool) error {
	s := r.snap
	s.seenPupils = map[string]bool{}
	r.dupPupils = map[string]bool{}
	var kinds []person
	if !pupilsOnly {
		s.guardianByDN = map[string]string{}
		s.seenStaff = map[string]bool{}
		r.seenGuardians = map[string]bool{}
		r.dupStaff = map[string]bool{}
		kinds = append(kinds,
			person{"guardians", r.src.GuardianBase, and(filterOr(r.src.GuardianFilter, r.am.PersonFilter), extraPerson), r.guardianAttrs(), r.guardianEntry},
			person{"staff", r.src.StaffBase, and(filterOr(r.src.StaffFilter, r.am.PersonFilter), extraPerson), r.staffAttrs(), r.staffEntry})
	}
	kinds = append(kinds, person{"pupils", r.src.PupilBase, and(filterOr(r.src.PupilFilter, r.am.PersonFilter), extraPupil), r.pupilAttrs(), r.pupilEntry})
	kinds = slices.DeleteFunc(kinds, func(k person) bool { return k.base == "" })

	if parent, bases, ok := siblings(kinds); ok {
		var attrs []string
		for _, k := range kinds {
			for _, a := range k.attrs {
				if !slices.ContainsFunc(attrs, func(b string) bool { return strings.EqualFold(a, b) }) {
					attrs = append(attrs, a)
				}
			}
		}
		err := r.conn.search(ctx, parent, kinds[0].filter, attrs, r.stats("people"), func(e *ldap.Entry) error {
			dn := normDN(e.DN)
			for i, b := range bases {
				if dn == b || strings.HasSuffix(dn, ","+b) {
					return kinds[i].entry(e)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	} else {
		for _, k := range kinds {
			if err := r.conn.search(ctx, k.base, k.filter, k.attrs, r.stats(k.phase), k.entry); err != nil {
				return err
			}
		}
	}
	s.staff = dropDuplicates(s.staff, r.dupStaff, func(st dirStaff) (string, string) { return st.ext, st.dn }, r.warn, "staff")
	s.pupils = dropDuplicates(s.pupils, r.dupPupils, func(p dirPupil) (string, string) { return p.ext, p.dn }, r.warn, "pupil")
	return nil
}

// siblings reports whether the kinds (two or more) can be read with one
// search: the same filter, and bases that are distinct children of one
// parent entry. It returns the parent and the normalized bases.
func siblings(kinds []person) (parent string, bases []string, ok bool) {
	if len(kinds) < 2 {
		return "", nil, false
	}
	var parentDN *ldap.DN
	for _, k := range kinds {
		if k.filter != kinds[0].filter {
			return "", nil, false
		}
		d, err := ldap.ParseDN(k.base)
		if err != nil || len(d.RDNs) < 2 {
			return "", nil, false
		}
		p := &ldap.DN{RDNs: d.RDNs[1:]}
		if parentDN == nil {
			parentDN = p
		} else if !parentDN.EqualFold(p) {
			return "", nil, false
		}
		b := normDN(k.base)
		if b == "" || slices.Contains(bases, b) {
			return "", nil, false
		}
		bases = append(bases, b)
	}
	return parentDN.String(), bases, true
}

// dropDuplicates removes the entries whose external id is in dup (the
// directory returned it more than once), with a warning each.
func dropDuplicates[T any](list []T, dup map[string]bool, key func(T) (ext, dn string), warn func(kind, dn, msg string), what string) []T {
	if len(dup) == 0 {
		return list
	}
	kept := list[:0]
	for _, v := range list {
		ext, dn := key(v)
		if dup[ext] {
			warn(school.WarnDuplicateID, dn, what+" skipped: duplicate external id")
			continue
		}
		kept = append(kept, v)
	}
	return kept
}

func (r *reader) guardianEntry(e *ldap.Entry) error {
	s := r.snap
	s.guardianEntries++
	g, ok := r.guardian(e)
	if !ok {
		return nil
	}
	if r.seenGuardians[g.ext] {
		r.warn(school.WarnDuplicateID, e.DN, "guardian skipped: duplicate external id")
		return nil
	}
	r.seenGuardians[g.ext] = true
	s.guardians = append(s.guardians, g)
	s.guardianByDN[normDN(e.DN)] = g.ext
	return nil
}

func (r *reader) staffAttrs() []string {
	return r.am.names(AttrID, AttrUsername, AttrDisplayName, AttrGivenName, AttrFamilyName, AttrEmail, AttrRole, AttrMemberOf)
}

func (r *reader) staffEntry(e *ldap.Entry) error {
	s := r.snap
	s.staffEntries++
	id, err := r.entryID(e)
	if err != nil {
		r.warn(school.WarnSkipped, e.DN, "staff skipped: "+err.Error())
		return nil
	}
	if s.seenStaff[id] {
		r.dupStaff[id] = true
		r.warn(school.WarnDuplicateID, e.DN, "staff skipped: duplicate external id")
		return nil
	}
	s.seenStaff[id] = true
	if bad := r.badText(e, AttrUsername, AttrDisplayName, AttrGivenName, AttrFamilyName, AttrEmail, AttrRole); bad != "" {
		r.warn(school.WarnSkipped, e.DN, "staff skipped: "+bad+" is not valid UTF-8 text")
		return nil
	}
	st := dirStaff{ext: id, dn: e.DN, username: strings.ToLower(r.one(e, AttrUsername)), name: r.one(e, AttrDisplayName),
		email: r.one(e, AttrEmail), role: school.RoleTeacher, memberOf: r.dns(e, AttrMemberOf)}
	if st.name == "" {
		st.name = strings.TrimSpace(r.one(e, AttrGivenName) + " " + r.one(e, AttrFamilyName))
	}
	switch strings.ToLower(r.one(e, AttrRole)) {
	case "admin", "school_admin", "schooladmin", "it":
		st.role = school.RoleSchoolAdmin
	}
	if st.username == "" || strings.ContainsAny(st.username, " \t\r\n") {
		r.warn(school.WarnSkipped, e.DN, "staff skipped: missing or invalid "+r.am.get(AttrUsername))
		return nil
	}
	if !strings.Contains(st.username, "@") {
		st.username += "@" + r.schoolDomain()
	}
	if st.email != "" && school.ValidEmail(st.email) != nil {
		r.warn(school.WarnSkipped, e.DN, "staff skipped: invalid e-mail address")
		return nil
	}
	s.staff = append(s.staff, st)
	return nil
}

func (r *reader) schoolDomain() string { return r.domain }

func (r *reader) pupilAttrs() []string {
	return r.am.names(AttrID, AttrGivenName, AttrFamilyName, AttrBirthDate, AttrGuardians, AttrMemberOf, AttrUsername)
}

func (r *reader) pupilEntry(e *ldap.Entry) error {
	s := r.snap
	s.pupilEntries++
	id, err := r.entryID(e)
	if err != nil {
		r.warn(school.WarnSkipped, e.DN, "pupil skipped: "+err.Error())
		return nil
	}
	if s.seenPupils[id] {
		r.dupPupils[id] = true
		r.warn(school.WarnDuplicateID, e.DN, "pupil skipped: duplicate external id")
		return nil
	}
	s.seenPupils[id] = true
	if bad := r.badText(e, AttrGivenName, AttrFamilyName, AttrBirthDate, AttrUsername); bad != "" {
		r.warn(school.WarnSkipped, e.DN, "pupil skipped: "+bad+" is not valid UTF-8 text")
		return nil
	}
	p := dirPupil{ext: id, dn: e.DN, given: r.one(e, AttrGivenName), family: r.one(e, AttrFamilyName), uid: strings.ToLower(r.one(e, AttrUsername)),
		guardianDNs: r.dns(e, AttrGuardians), memberOf: r.dns(e, AttrMemberOf)}
	if p.given == "" {
		r.warn(school.WarnSkipped, e.DN, "pupil skipped: no "+r.am.get(AttrGivenName))
		return nil
	}
	if b := r.one(e, AttrBirthDate); b == "" {
		r.warn(school.WarnNoBirthDate, e.DN, "pupil has no date of birth: enrolment cannot start")
	} else if p.birth, err = parseBirthDate(b, r.now); err != nil {
		// Imported like a pupil without one: dropping the pupil would
		// quarantine them over a typo.
		r.warn(school.WarnBadBirthDate, e.DN, err.Error()+": imported without a date of birth; enrolment cannot start")
		p.birth = time.Time{}
	}
	s.pupils = append(s.pupils, p)
	return nil
}

// resolveGuardians reads guardian entries referenced by pupils but not
// read by the guardian search (incremental runs read only changed
// guardians), one base-scope read each.
func (r *reader) resolveGuardians(ctx context.Context) error {
	s := r.snap
	if s.guardianByDN == nil {
		s.guardianByDN = map[string]string{}
	}
	missing := map[string]bool{}
	for _, p := range s.pupils {
		for _, dn := range p.guardianDNs {
			if _, ok := s.guardianByDN[dn]; !ok {
				missing[dn] = true
			}
		}
	}
	for dn := range missing {
		if err := ctx.Err(); err != nil {
			return err
		}
		e, ok, err := r.conn.lookup(dn, r.guardianAttrs())
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		if g, ok := r.guardian(e); ok {
			s.guardians = append(s.guardians, g)
			s.guardianByDN[dn] = g.ext
		}
	}
	return nil
}
