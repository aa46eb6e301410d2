package bench

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// check verifies the auto-posting form of a SAML response to request id.
func (b *samlBrowser) check(body, requestID, relay string) error {
	m := samlFormRE.FindStringSubmatchIndex(body)
	if m == nil {
		return errors.New("no SAML form in the page")
	}
	if action := html.UnescapeString(body[m[2]:m[3]]); action != b.sp.AcsURL.String() {
		return fmt.Errorf("form posts to %q, not the ACS", action)
	}
	rest := body[m[1]:]
	if end := strings.Index(rest, "</form>"); end >= 0 {
		rest = rest[:end]
	}
	// The hidden fields, read without a regular expression: the
	// response's tens of kilobytes of base64 made that a tenth of this
	// process's CPU.
	form := url.Values{}
	for {
		i := strings.Index(rest, `<input type="hidden" name="`)
		if i < 0 {
			break
		}
		rest = rest[i+len(`<input type="hidden" name="`):]
		name, after, ok := strings.Cut(rest, `" value="`)
		if !ok {
			return errors.New("malformed hidden field in the SAML form")
		}
		value, after, ok := strings.Cut(after, `"`)
		if !ok {
			return errors.New("malformed hidden field in the SAML form")
		}
		form.Add(html.UnescapeString(name), html.UnescapeString(value))
		rest = after
	}
	if form.Get("RelayState") != relay {
		return fmt.Errorf("RelayState %q, want %q", form.Get("RelayState"), relay)
	}
	raw, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		return fmt.Errorf("SAMLResponse: %w", err)
	}
	// Issuer, Destination, InResponseTo, audience, times and at least one
	// signature: crewjam/saml, as a service provider checks them.
	a, err := b.sp.ParseXMLResponse(raw, []string{requestID}, b.sp.AcsURL)
	if err != nil {
		var ie *saml.InvalidResponseError
		if errors.As(err, &ie) {
			return fmt.Errorf("response refused: %v", ie.PrivateErr)
		}
		return fmt.Errorf("response refused: %w", err)
	}
	// Both signatures, each on its own.
	if err := verifyBothSignatures(raw, b.certs); err != nil {
		return err
	}
	got := map[string]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			v := ""
			if len(at.Values) > 0 {
				v = at.Values[0].Value
				if v == "" && at.Values[0].NameID != nil {
					v = at.Values[0].NameID.Value
				}
			}
			got[at.FriendlyName] = v
		}
	}
	for _, name := range benchSAMLFriendly {
		if got[name] == "" {
			return fmt.Errorf("attribute %s missing or empty (got %v)", name, got)
		}
	}
	if b.p.GivenName != "" && got["givenName"] != b.p.GivenName {
		return fmt.Errorf("givenName %q, want %q", got["givenName"], b.p.GivenName)
	}
	return nil
}

// verifyBothSignatures checks the signature of the Response and of the
// (unencrypted) Assertion in it against certs.
func verifyBothSignatures(raw []byte, certs []*x509.Certificate) error {
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		return err
	}
	resp := doc.Root()
	if resp == nil || resp.Tag != "Response" {
		return errors.New("no Response element")
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: certs})
	if resp.FindElement("./Signature") == nil {
		return errors.New("the Response is not signed")
	}
	if _, err := vc.Validate(resp); err != nil {
		return fmt.Errorf("signature of the Response: %w", err)
	}
	as := resp.FindElement("./Assertion")
	if as == nil {
		return errors.New("no (unencrypted) Assertion")
	}
	if as.FindElement("./Signature") == nil {
		return errors.New("the Assertion is not signed")
	}
	if _, err := vc.Validate(as); err != nil {
		return fmt.Errorf("signature of the Assertion: %w", err)
	}
	return nil
}

// fetchIdPMetadata reads ElevID's SAML metadata and its signing
// certificates.
func fetchIdPMetadata(ctx context.Context, c *http.Client, u string) (*saml.EntityDescriptor, []*x509.Certificate, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("bench saml: IdP metadata: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("bench saml: IdP metadata %s: status %d %v", u, resp.StatusCode, err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(b, &ed); err != nil {
		return nil, nil, fmt.Errorf("bench saml: IdP metadata: %w", err)
	}
	var certs []*x509.Certificate
	for _, d := range ed.IDPSSODescriptors {
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Data), ""))
				if err != nil {
					continue
				}
				if c, err := x509.ParseCertificate(der); err == nil {
					certs = append(certs, c)
				}
			}
		}
	}
	if len(certs) == 0 {
		return nil, nil, errors.New("bench saml: IdP metadata has no signing certificate")
	}
	return &ed, certs, nil
}

// pidCPU is the user and system CPU time of process pid so far, from
// /proc (-1 when it cannot be read).
func pidCPU(pid int) time.Duration {
	if pid == 0 {
		return -1
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	// Linux reports these in clock ticks of USER_HZ, 100 per second on
	// every architecture Go supports.
	return time.Duration(ut+st) * (time.Second / 100)
}

// listenerPID finds the process listening on base's TCP port on this
// machine (from /proc/net/tcp{,6} and the processes' open sockets), or 0.
func listenerPID(base string) int {
	u, err := url.Parse(base)
	if err != nil {
		return 0
	}
	port, err := strconv.Atoi(u.Port())
	if err != nil {
		if port = 80; u.Scheme == "https" {
			port = 443
		}
	}
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for line := range strings.Lines(string(b)) {
			fs := strings.Fields(line)
			// local_address is HEXIP:HEXPORT; state 0A is LISTEN.
			if len(fs) < 10 || fs[3] != "0A" {
				continue
			}
			_, hp, ok := strings.Cut(fs[1], ":")
			if p, err := strconv.ParseInt(hp, 16, 32); ok && err == nil && int(p) == port {
				inodes["socket:["+fs[9]+"]"] = true
			}
		}
	}
	if len(inodes) == 0 {
		return 0
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		if l, err := os.Readlink(fd); err == nil && inodes[l] {
			pid, _ := strconv.Atoi(strings.Split(fd, "/")[2])
			if pid != os.Getpid() {
				return pid
			}
		}
	}
	return 0
}
