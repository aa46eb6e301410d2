package rostersync

import (
	"testing"
	"time"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
)

// FuzzLDAPEntry fuzzes the mapping of directory entries (issue 15, item
// 10): a pupil entry with arbitrary DN, names, date of birth and links
// never panics, and whatever it maps to is valid UTF-8 (or the entry is
// skipped with a valid UTF-8 warning).
func FuzzLDAPEntry(f *testing.F) {
	for _, s := range [][5]string{
		{"uid=p1,ou=pupils,dc=school,dc=test", "Ida", "Hansen", "20120304", "uid=g1,ou=guardians,dc=school,dc=test"},
		{"uid=p2,ou=pupils", "bad\xff\xfe", "X", "2012-03-04", "cn=\xc3"},
		{"\xff", "", "", "", ""},
		{"uid=p3", "A", "B", "99999999", "=,=,="},
		{"CN=Ø,OU=Elever,DC=skole", "Åse", "Ærø", "20121399", "CN=a\\,b,DC=x"},
	} {
		f.Add(s[0], s[1], s[2], s[3], s[4])
	}
	am, err := newAttrMap(school.DirectorySource{Preset: school.PresetOpenLDAP}.WithDefaults())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, dn, given, family, birth, guardian string) {
		r := &reader{am: am, run: &school.SyncRun{}, now: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
		e := ldap.NewEntry(dn, map[string][]string{
			am.get(AttrGivenName): {given}, am.get(AttrFamilyName): {family}, am.get(AttrBirthDate): {birth},
			am.get(AttrGuardians): {guardian}, am.get(AttrMemberOf): {guardian},
		})
		if bad := r.badText(e, AttrGivenName, AttrFamilyName, AttrBirthDate); bad == "" {
			for _, v := range []string{r.one(e, AttrGivenName), r.one(e, AttrFamilyName), e.DN} {
				if !utf8.ValidString(v) {
					t.Fatalf("badText missed invalid text %q", v)
				}
			}
		} else {
			r.warn(school.WarnSkipped, e.DN, "pupil skipped: "+bad+" is not valid UTF-8 text")
		}
		for _, d := range r.dns(e, AttrGuardians) {
			if !utf8.ValidString(d) {
				t.Fatalf("invalid DN kept: %q", d)
			}
		}
		_, _ = parseBirthDate(birth, r.now)
		_ = ValidateFilter("(" + given + ")")
		for _, w := range r.run.Warnings {
			if !utf8.ValidString(w.DN) || !utf8.ValidString(w.Message) {
				t.Fatalf("invalid UTF-8 in a warning: %+v", w)
			}
		}
	})
}
