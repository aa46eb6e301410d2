package rostersync

import (
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"
)

// The fast path of normDN gives what ParseDN gives.
func TestNormDNFastPath(t *testing.T) {
	for _, dn := range []string{
		"uid=p1,ou=pupils,dc=school,dc=test", "CN=Pupil.5,OU=pupils,DC=elevid,DC=test", "cn=a@b,dc=x",
		"uid=p1, ou=pupils", "cn=a+sn=b,dc=x", `cn=a\,b,dc=x`, "cn=Ida Hansen,dc=x", "cn=,dc=x", "=a", "dc=x,", "nodn", "a=b=c",
		"cn=#41,dc=x", "",
	} {
		want := ""
		if d, err := ldap.ParseDN(dn); err == nil {
			want = strings.ToLower(d.String())
		}
		if got := normDN(dn); got != want {
			t.Errorf("normDN(%q) = %q, ParseDN gives %q (simple %v)", dn, got, want, simpleDN(dn))
		}
	}
}
