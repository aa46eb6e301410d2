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
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
)

// check verifies the auto-posting form of a SAML response to request
// requestID with RelayState relay, as a service provider receiving it at
// received would: the Response's and the Assertion's times, and the
// certificates' validity, are judged as of then. It is safe for
// concurrent use.
func (b *samlBrowser) check(body, requestID, relay string, received time.Time) error {
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
	// Issuer, Destination, InResponseTo, audience, times, and each of the
	// two signatures once, with the IdP metadata's certificates: crewjam/saml
	// (see requireSignedResponse), and that the Assertion carries one.
	sp := *b.sp
	sp.Clock = dsig.NewFakeClockAt(received)
	a, err := sp.ParseXMLResponse(raw, []string{requestID}, sp.AcsURL)
	if err != nil {
		var ie *saml.InvalidResponseError
		if errors.As(err, &ie) {
			return fmt.Errorf("response refused: %v", ie.PrivateErr)
		}
		return fmt.Errorf("response refused: %w", err)
	}
	if !isXMLSignature(a.Signature) {
		return errors.New("the Assertion is not signed")
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

// requireSignedResponse is the bench SP's ValidateRequestID: the default
// InResponseTo check, and a refusal of a Response without an XML
// signature. With it, and the Assertion's Signature that check looks for,
// crewjam/saml v0.6.3 has validated both signatures, each once, with the
// IdP metadata's signing certificates (service_provider.go):
//
//   - an element's signature is present when it has a child Signature in
//     the XML-DSig namespace (validateSignatureUnclassified, 2646-2651);
//     one that is present is validated (2744) with the certificates of
//     signatureVerificationCerts, which, as neither IDPCertificate nor a
//     fingerprint is set, are getIDPSigningCerts' (2774-2775, 790-811):
//     those of the metadata's IDPSSODescriptors with use "signing" or
//     none (845), as fetchIdPMetadata reads them;
//   - the Response's, when present, must be valid (checkResponseSignature,
//     1663-1676), and the Response then handed to ValidateRequestID is
//     unmarshalled (1710) from what that signature covers, with the
//     Signature put back (1669, withSignature); without one it is the
//     Response as received, which then has no XML-DSig Signature;
//   - the Assertion's, when present, must be valid even in a signed
//     Response (parseReceivedAssertion, 1966-1974), and the Assertion
//     returned (1817) is unmarshalled (1978) from what it covers, with the
//     Signature put back (1970).
//
// crewjam/saml accepts a Response with only one of the two signatures, so
// the presence of each is checked here; goxmldsig validating them a second
// time (as this generator once did) was a sixth of its CPU. ValidateRequestID
// is also called for an Assertion's InResponseTo, but only with
// AllowIDPInitiated (2294-2299), which the bench SP does not set.
func requireSignedResponse(r saml.Response, requestIDs []string) error {
	if !isXMLSignature(r.Signature) {
		return errors.New("the Response is not signed")
	}
	if r.InResponseTo == "" || !slices.Contains(requestIDs, r.InResponseTo) {
		return fmt.Errorf("InResponseTo %q is not one of %q", r.InResponseTo, requestIDs)
	}
	return nil
}

// isXMLSignature reports whether el, the Signature of a Response or an
// Assertion as crewjam/saml unmarshals it (by local name only), is an
// XML-DSig Signature.
func isXMLSignature(el *etree.Element) bool {
	return el != nil && el.Tag == "Signature" && el.NamespaceURI() == dsig.Namespace
}

// fetchIdPMetadata reads ElevID's SAML metadata, which must list a signing
// certificate.
func fetchIdPMetadata(ctx context.Context, c *http.Client, u string) (*saml.EntityDescriptor, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench saml: IdP metadata: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench saml: IdP metadata %s: status %d %v", u, resp.StatusCode, err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(b, &ed); err != nil {
		return nil, fmt.Errorf("bench saml: IdP metadata: %w", err)
	}
	certs := 0
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
				if _, err := x509.ParseCertificate(der); err == nil {
					certs++
				}
			}
		}
	}
	if certs == 0 {
		return nil, errors.New("bench saml: IdP metadata has no signing certificate")
	}
	return &ed, nil
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
