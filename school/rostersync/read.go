package rostersync

import (
	"context"
	"fmt"
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
