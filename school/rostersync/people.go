package rostersync

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
)

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
			if dn == "" {
				// Three searches would have read it by its raw DN; one
				// search cannot tell whose it is.
				r.warn(school.WarnSkipped, e.DN, "entry skipped: its DN cannot be parsed")
				return nil
			}
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
