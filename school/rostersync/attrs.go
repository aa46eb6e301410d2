package rostersync

import (
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
)

// Attribute map keys: the logical names a preset maps to directory
// attributes. DirectorySource.Attributes may override any of them.
const (
	AttrID           = "id"          // stable external id (entryUUID / objectGUID)
	AttrUsername     = "username"    // staff login name (uid / userPrincipalName)
	AttrGivenName    = "givenName"   // given name
	AttrFamilyName   = "familyName"  // family name
	AttrDisplayName  = "displayName" // full name of staff and guardians
	AttrEmail        = "email"       // e-mail address
	AttrBirthDate    = "birthDate"   // date of birth, YYYYMMDD or YYYY-MM-DD
	AttrGuardians    = "guardians"   // DN-valued links from a pupil to guardian entries
	AttrMemberOf     = "memberOf"    // DN-valued group memberships of a person
	AttrMember       = "member"      // DN-valued members of a class group
	AttrClassName    = "className"   // class name on a class group
	AttrRole         = "role"        // staff role: "admin"/"school_admin" makes a school admin, else teacher
	AttrModified     = "modified"    // modification time for incremental runs
	defaultTimeLimit = 120           // seconds the server may spend per page
)

// Preset is an attribute map with the default filters that go with it.
type Preset struct {
	Name         string
	Attrs        map[string]string
	BinaryID     bool   // the id attribute is a 16-byte GUID (objectGUID)
	PersonFilter string // default filter for pupils, staff and guardians
	GroupFilter  string // default filter for classes
	TimeFormat   string // generalized-time layout for AttrModified filters
}

// Presets are the built-in attribute maps by name.
var Presets = map[string]Preset{
	school.PresetOpenLDAP: {
		Name: school.PresetOpenLDAP,
		Attrs: map[string]string{
			AttrID: "entryUUID", AttrUsername: "uid", AttrGivenName: "givenName", AttrFamilyName: "sn",
			AttrDisplayName: "cn", AttrEmail: "mail", AttrBirthDate: "schacDateOfBirth", AttrGuardians: "seeAlso",
			AttrMemberOf: "memberOf", AttrMember: "member", AttrClassName: "cn", AttrRole: "employeeType",
			AttrModified: "modifyTimestamp",
		},
		PersonFilter: "(objectClass=inetOrgPerson)",
		GroupFilter:  "(objectClass=groupOfNames)",
		TimeFormat:   "20060102150405Z",
	},
	school.PresetAD: {
		Name: school.PresetAD,
		Attrs: map[string]string{
			AttrID: "objectGUID", AttrUsername: "userPrincipalName", AttrGivenName: "givenName", AttrFamilyName: "sn",
			AttrDisplayName: "displayName", AttrEmail: "mail", AttrBirthDate: "msDS-cloudExtensionAttribute1", AttrGuardians: "seeAlso",
			AttrMemberOf: "memberOf", AttrMember: "member", AttrClassName: "cn", AttrRole: "employeeType",
			AttrModified: "whenChanged",
		},
		BinaryID:     true,
		PersonFilter: "(&(objectCategory=person)(objectClass=user))",
		GroupFilter:  "(objectClass=group)",
		TimeFormat:   "20060102150405.0Z",
	},
}

// attrMap is a resolved preset plus overrides for one source.
type attrMap struct {
	Preset
	a map[string]string
}

func newAttrMap(src school.DirectorySource) (attrMap, error) {
	p, ok := Presets[src.Preset]
	if !ok {
		return attrMap{}, fmt.Errorf("unknown preset %q", src.Preset)
	}
	m := attrMap{Preset: p, a: map[string]string{}}
	for k, v := range p.Attrs {
		m.a[k] = v
	}
	for k, v := range src.Attributes {
		if _, ok := p.Attrs[k]; !ok {
			return attrMap{}, fmt.Errorf("attribute map: unknown key %q", k)
		}
		m.a[k] = v
	}
	return m, nil
}

func (m attrMap) get(key string) string { return m.a[key] }

// names returns the directory attribute names for keys.
func (m attrMap) names(keys ...string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, m.a[k])
	}
	return out
}

// ValidateFilter reports whether f is a syntactically valid LDAP filter
// (empty means the preset's default).
func ValidateFilter(f string) error {
	if f == "" {
		return nil
	}
	if _, err := ldap.CompileFilter(f); err != nil {
		return fmt.Errorf("filter %q: %w", f, err)
	}
	return nil
}

// ValidateSource checks what the store cannot: filters, base DNs and the
// attribute map of src.
func ValidateSource(src school.DirectorySource) error {
	var probs []string
	for _, f := range []string{src.PupilFilter, src.StaffFilter, src.ClassFilter, src.GuardianFilter} {
		if err := ValidateFilter(f); err != nil {
			probs = append(probs, err.Error())
		}
	}
	binds := []string{src.BindDN}
	if src.Preset == school.PresetAD && (strings.Contains(src.BindDN, "@") || strings.Contains(src.BindDN, `\`)) && !strings.Contains(src.BindDN, "=") {
		binds = nil // Active Directory also binds as user@domain or DOMAIN\user
	}
	for _, b := range append([]string{src.PupilBase, src.StaffBase, src.ClassBase, src.GuardianBase}, binds...) {
		if b == "" {
			continue
		}
		if _, err := ldap.ParseDN(strings.ReplaceAll(b, school.SchoolPlaceholder, "x")); err != nil {
			probs = append(probs, fmt.Sprintf("DN %q: %v", b, err))
		}
	}
	if _, err := newAttrMap(src); err != nil {
		probs = append(probs, err.Error())
	}
	if src.SchoolAttr != "" {
		if err := ValidateFilter("(" + src.SchoolAttr + "=x)"); err != nil {
			probs = append(probs, "school attribute: "+err.Error())
		}
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", school.ErrInvalid, strings.Join(probs, "; "))
	}
	return nil
}

// DecodeGUID turns Active Directory's 16-byte objectGUID into the canonical
// lower-case UUID string. The first three fields are stored little-endian
// ("mixed-endian"), the last two as they are.
func DecodeGUID(b []byte) (string, error) {
	if len(b) != 16 {
		return "", fmt.Errorf("objectGUID is %d bytes, want 16", len(b))
	}
	var u [16]byte
	u[0], u[1], u[2], u[3] = b[3], b[2], b[1], b[0]
	u[4], u[5] = b[5], b[4]
	u[6], u[7] = b[7], b[6]
	copy(u[8:], b[8:])
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

// EncodeGUID is the inverse of DecodeGUID: the 16 bytes AD stores for a
// canonical UUID string.
func EncodeGUID(s string) ([]byte, error) {
	u, err := parseUUID(s)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 16)
	b[0], b[1], b[2], b[3] = u[3], u[2], u[1], u[0]
	b[4], b[5] = u[5], u[4]
	b[6], b[7] = u[7], u[6]
	copy(b[8:], u[8:])
	return b, nil
}

func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, fmt.Errorf("%q is not a UUID", s)
	}
	h := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("%q is not a UUID", s)
	}
	return u, nil
}

// normalizeUUID returns s in canonical lower case, or an error when s is no
// UUID (entryUUID values are RFC 4122 strings).
func normalizeUUID(s string) (string, error) {
	if _, err := parseUUID(s); err != nil {
		return "", err
	}
	return strings.ToLower(s), nil
}

// escapeBinary escapes every byte of b for use in a filter (\xx), as a
// binary attribute such as objectGUID requires.
func escapeBinary(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		fmt.Fprintf(&sb, `\%02x`, c)
	}
	return sb.String()
}

// parseBirthDate accepts YYYYMMDD (SCHAC) and YYYY-MM-DD and refuses dates
// in the future or more than 30 years back.
func parseBirthDate(v string, now time.Time) (time.Time, error) {
	var t time.Time
	var err error
	switch len(v) {
	case 8:
		t, err = time.Parse("20060102", v)
	case 10:
		t, err = time.Parse(time.DateOnly, v)
	default:
		err = fmt.Errorf("length %d", len(v))
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("date of birth %q is not YYYYMMDD or YYYY-MM-DD", v)
	}
	if t.After(now) || t.Before(now.AddDate(-30, 0, 0)) {
		return time.Time{}, fmt.Errorf("date of birth %q is out of range", v)
	}
	return t, nil
}

// normDN returns a comparable form of a DN (RFC 4514 normalized, lower
// case), or "" when dn does not parse.
func normDN(dn string) string {
	if simpleDN(dn) {
		// The common case, without ParseDN's cost (a sync normalizes
		// every member and guardian link: hundreds of thousands).
		return strings.ToLower(dn)
	}
	d, err := ldap.ParseDN(dn)
	if err != nil {
		return ""
	}
	return strings.ToLower(d.String())
}

// simpleDN reports whether dn is a plain DN that ParseDN would return
// unchanged but for case: RDNs of one type=value each, of letters,
// digits and "-_.@" only, with no spaces, escapes or multi-valued RDNs.
func simpleDN(dn string) bool {
	if dn == "" {
		return false
	}
	eq, start := 0, 0
	for i := 0; i <= len(dn); i++ {
		if i == len(dn) || dn[i] == ',' {
			if eq != 1 || dn[start] == '=' || dn[i-1] == '=' {
				return false
			}
			eq, start = 0, i+1
			if i+1 == len(dn) {
				return false
			}
			continue
		}
		c := dn[i]
		switch {
		case c == '=':
			eq++
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '@':
		default:
			return false
		}
	}
	return true
}
