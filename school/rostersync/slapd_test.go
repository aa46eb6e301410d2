package rostersync_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/elevid/elevid/internal/testenv"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
)

const slapdBin = "/usr/sbin/slapd"

// slapd is a real OpenLDAP server in a temp dir.
type slapd struct {
	url    string
	caPEM  string
	rootDN string
	rootPW string
	pid    int // the slapd process
}

// cpu returns the CPU time slapd has used so far (user + system), read
// from /proc; zero where that cannot be read.
func (s *slapd) cpu() time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(s.pid) + "/stat")
	if err != nil {
		return 0
	}
	// Fields after the command name (which may hold spaces) start after ")".
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}

func writeLDIF(t testing.TB, path string, r roster) {
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "dn: %s\nobjectClass: dcObject\nobjectClass: organization\ndc: school\no: School\n\n", base)
	for _, ou := range []string{"pupils", "guardians", "classes", "staff"} {
		fmt.Fprintf(w, "dn: ou=%s,%s\nobjectClass: organizationalUnit\nou: %s\n\n", ou, base, ou)
	}
	for _, e := range r.entries(time.Now()) {
		writeEntry(w, e)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
}

var ldifSkip = map[string]bool{"entryuuid": true, "modifytimestamp": true, "whenchanged": true, "objectguid": true,
	"userprincipalname": true, "objectcategory": true, "objectclass": true}

// writeEntry writes e as LDIF for slapadd (which makes entryUUIDs).
func writeEntry(w *bufio.Writer, e *entry) {
	fmt.Fprintf(w, "dn: %s\n", e.DN)
	// Old timestamps, so that incremental runs see only what a test changes.
	old := time.Now().Add(-48 * time.Hour).UTC().Format("20060102150405Z")
	fmt.Fprintf(w, "createTimestamp: %s\nmodifyTimestamp: %s\n", old, old)
	for _, oc := range e.get("objectClass") {
		fmt.Fprintf(w, "objectClass: %s\n", oc)
	}
	if strings.HasPrefix(e.DN, "uid=p") {
		fmt.Fprintf(w, "objectClass: schacPersonalCharacteristics\ncn: %s %s\n", e.get("givenName")[0], e.get("sn")[0])
	}
	keys := make([]string, 0, len(e.Attrs))
	for k := range e.Attrs {
		if !ldifSkip[k] {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range e.Attrs[k] {
			fmt.Fprintf(w, "%s: %s\n", k, v)
		}
	}
	fmt.Fprintln(w)
}

// testCA makes a CA and a server certificate for 127.0.0.1 and localhost,
// writing the server's PEM files to dir; it returns the CA's PEM.
func testCA(t testing.TB, dir string) string {
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ElevID test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pk, _ := x509.MarshalPKCS8PrivateKey(key)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	os.WriteFile(filepath.Join(dir, "ca.pem"), caPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "server.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, "server.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pk}), 0o600)
	return string(caPEM)
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startSlapd loads roster r into a fresh mdb database with slapadd and
// starts slapd on a random loopback port, with StartTLS under a test CA.
// It skips when slapd is not installed.
func startSlapd(t testing.TB, r roster) *slapd {
	return startSlapdWith(t, func(path string) { writeLDIF(t, path, r) }, 0, fmt.Sprintf("%d pupils", r.pupils))
}

// startSlapdWith is startSlapd with the LDIF written by write, on port
// (a free one when 0).
func startSlapdWith(t testing.TB, write func(path string), port int, what string) *slapd {
	if _, err := os.Stat(slapdBin); err != nil {
		testenv.Unavailable(t, "slapd", slapdBin+" not found: install the Debian packages slapd and ldap-utils")
	}
	dir := t.TempDir()
	schema, err := filepath.Abs("testdata/elevid-schac.schema")
	if err != nil {
		t.Fatal(err)
	}
	s := &slapd{rootDN: "cn=admin," + base, rootPW: "slapd-secret"}
	s.caPEM = testCA(t, dir)
	os.Mkdir(filepath.Join(dir, "db"), 0o700)
	modules := ""
	if _, err := os.Stat("/usr/lib/ldap/back_mdb.so"); err == nil {
		modules = "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
	}
	conf := fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include %s
%spidfile %s/slapd.pid
TLSCACertificateFile %s/ca.pem
TLSCertificateFile %s/server.pem
TLSCertificateKeyFile %s/server.key
sizelimit 500
database mdb
maxsize 4294967296
suffix "%s"
rootdn "%s"
rootpw %s
directory %s/db
index objectClass,entryUUID eq
index modifyTimestamp eq
index departmentNumber eq
limits dn.exact="%s" size=unlimited size.pr=unlimited
`, schema, modules, dir, dir, dir, dir, base, s.rootDN, s.rootPW, dir, s.rootDN)
	confPath := filepath.Join(dir, "slapd.conf")
	os.WriteFile(confPath, []byte(conf), 0o600)
	ldif := filepath.Join(dir, "roster.ldif")
	write(ldif)
	start := time.Now()
	if out, err := exec.Command("/usr/sbin/slapadd", "-q", "-f", confPath, "-l", ldif).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	t.Logf("slapadd of %s: %s", what, time.Since(start).Round(time.Millisecond))
	if port == 0 {
		port = freePort(t)
	}
	s.url = "ldap://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(slapdBin, "-d", "0", "-f", confPath, "-h", s.url+"/")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.pid = cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	for i := 0; ; i++ {
		c, err := ldap.DialURL(s.url)
		if err == nil {
			c.Close()
			break
		}
		if i > 100 {
			t.Fatalf("slapd did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s
}

func (s *slapd) modify(t testing.TB, dn string, attr string, vals ...string) {
	c, err := ldap.DialURL(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(s.rootDN, s.rootPW); err != nil {
		t.Fatal(err)
	}
	m := ldap.NewModifyRequest(dn, nil)
	m.Replace(attr, vals)
	if err := c.Modify(m); err != nil {
		t.Fatal(err)
	}
}

// uuidOf returns the entryUUID slapd gave dn.
func (s *slapd) uuidOf(t testing.TB, dn string) string {
	c, err := ldap.DialURL(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, 0, 0, 0, false, "(objectClass=*)", []string{"entryUUID"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("read %s: %v", dn, err)
	}
	return res.Entries[0].GetAttributeValue("entryUUID")
}

func (s *slapd) del(t testing.TB, dn string) {
	c, err := ldap.DialURL(s.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Bind(s.rootDN, s.rootPW); err != nil {
		t.Fatal(err)
	}
	if err := c.Del(ldap.NewDelRequest(dn, nil)); err != nil {
		t.Fatal(err)
	}
}

// slapdEnv is an env whose source points at a real slapd.
func slapdEnv(t testing.TB, r roster, st school.Store, clock *testClock) (*env, *slapd) {
	s := startSlapd(t, r)
	e := newEnv(t, roster{preset: r.preset}, st, clock) // an empty fake directory, unused
	e.source(func(src *school.DirectorySource) {
		src.URL, src.Insecure = s.url, true
		src.BindDN = s.rootDN
		src.BindPassword = e.sealer.Seal([]byte(s.rootPW), "ldap:"+e.sch.ID)
		src.PageSize = 200
	})
	return e, s
}

func TestSlapd(t *testing.T) {
	r := roster{preset: school.PresetOpenLDAP, pupils: 1200, guardians: 700, classes: 48, staff: 6}
	e, s := slapdEnv(t, r, nil, nil)
	total := r.pupils + r.guardians + r.classes + r.staff

	t.Run("plain", func(t *testing.T) {
		res := e.mustRun(rostersync.RunOptions{})
		counts(t, res, map[string]int{"class.create": r.classes, "guardian.create": r.guardians, "staff.create": r.staff, "pupil.create": r.pupils})
		if res.Run.Entries != total || len(res.Run.Warnings) != 0 {
			t.Fatalf("run = %+v", res.Run)
		}
		p := e.pupils(school.PupilActive)
		if len(p) != r.pupils || len(p[0].ClassIDs) != 1 || len(p[0].GuardianIDs) == 0 || p[0].BirthDate.IsZero() {
			t.Fatalf("%d pupils, first %+v", len(p), p[0])
		}
		// entryUUIDs come from slapd: canonical UUIDs.
		if _, err := rostersync.EncodeGUID(p[0].ExternalID); err != nil {
			t.Fatalf("external id %q: %v", p[0].ExternalID, err)
		}
		counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{})
	})

	t.Run("starttls", func(t *testing.T) {
		e.source(func(src *school.DirectorySource) { src.StartTLS = true; src.CAPEM = s.caPEM })
		s.modify(t, pupilDN(5), "sn", "Changed")
		e.clock.Advance(time.Hour)
		res := e.mustRun(rostersync.RunOptions{})
		counts(t, res, map[string]int{"pupil.update": 1})
		// An untrusted CA fails the run and applies nothing.
		other := testCA(t, t.TempDir())
		e.source(func(src *school.DirectorySource) { src.CAPEM = other })
		id6 := s.uuidOf(t, pupilDN(6))
		s.del(t, pupilDN(6))
		if _, err := e.run(rostersync.RunOptions{}); err == nil || !strings.Contains(err.Error(), "StartTLS") {
			t.Fatalf("untrusted CA: %v", err)
		}
		if p, err := e.st.PupilByExternalID(e.ctx, e.sch.ID, id6); err != nil || p.Status != school.PupilActive {
			t.Fatalf("a failed TLS run quarantined: %+v %v", p, err)
		}
		e.source(func(src *school.DirectorySource) { src.CAPEM = s.caPEM })
		counts(t, e.mustRun(rostersync.RunOptions{}), map[string]int{"pupil.quarantine": 1})
	})

	t.Run("incremental", func(t *testing.T) {
		// modifyTimestamp has a one-second resolution and the run's mark is
		// the clock's: move the test clock to real time.
		e.clock.Advance(time.Until(e.clock.Now()) * -1)
		e.mustRun(rostersync.RunOptions{})
		s.modify(t, pupilDN(7), "givenName", "Incremental")
		res := e.mustRun(rostersync.RunOptions{Mode: school.SyncIncremental})
		counts(t, res, map[string]int{"pupil.update": 1})
		if res.Run.Entries >= total/2 {
			t.Fatalf("incremental run read %d entries", res.Run.Entries)
		}
	})

	t.Run("schema", func(t *testing.T) {
		src, err := e.st.GetDirectorySource(e.ctx, e.sch.ID)
		if err != nil {
			t.Fatal(err)
		}
		missing, err := rostersync.CheckAttributes(e.ctx, src, s.rootPW, 10*time.Second, "schacDateOfBirth", "extensionAttribute1", "givenname")
		if err != nil || len(missing) != 1 || missing[0] != "extensionAttribute1" {
			t.Fatalf("CheckAttributes = %v, %v", missing, err)
		}
	})

	t.Run("bad bind", func(t *testing.T) {
		e.source(func(src *school.DirectorySource) { src.BindPassword = e.sealer.Seal([]byte("nope"), "ldap:"+e.sch.ID) })
		if _, err := e.run(rostersync.RunOptions{}); err == nil || !strings.Contains(err.Error(), "Invalid Credentials") {
			t.Fatalf("bad bind: %v", err)
		}
	})
	_ = context.Background
}
