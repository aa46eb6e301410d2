package idptest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"html"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/elevid/elevid/idp/release"
	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/webtest"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlite"
	"github.com/elevid/elevid/school/sqlstore"
)

// Sessions is a saml.SessionSource for tests: a cookie "sid" holds
// the id of a pupil session in the store, created by Login.
type Sessions struct {
	st school.Store
}

func (s *Sessions) Current(r *http.Request) (idpsaml.PupilSession, bool) {
	c, err := r.Cookie("sid")
	if err != nil {
		return idpsaml.PupilSession{}, false
	}
	ss, err := s.st.TouchSession(r.Context(), c.Value)
	if err != nil {
		return idpsaml.PupilSession{}, false
	}
	return idpsaml.PupilSession{ID: school.SAMLSessionID(ss.SubjectID, ss.Ref), PupilID: ss.SubjectID, AuthTime: ss.AuthTime, UserVerified: ss.UserVerified}, true
}

func (s *Sessions) LoginURL(returnTo string) string {
	return "/login?return=" + url.QueryEscape(returnTo)
}

// Ended reports whether the session behind cookie value id has ended.
func (s *Sessions) Ended(id string) bool {
	_, err := s.st.TouchSession(context.Background(), id)
	return err != nil
}

func (s *Sessions) Login(pupilID string) string {
	return s.LoginWith(pupilID, true)
}

// LoginWith creates a pupil session whose passkey did or did not verify
// the pupil.
func (s *Sessions) LoginWith(pupilID string, userVerified bool) string {
	ss, err := s.st.CreateSession(context.Background(), school.Session{Kind: school.SessionPupil, SubjectID: pupilID, ExpiresAt: time.Now().Add(time.Hour),
		AuthTime: time.Now(), UserVerified: userVerified})
	if err != nil {
		panic(err)
	}
	return ss.ID
}

// Releases wraps the audit release log and remembers releases.
type Releases struct {
	inner idpsaml.ReleaseLogger
	mu    sync.Mutex
	Got   [][]string
}

// Record remembers the release once its transaction has committed.
func (r *Releases) Record(ctx context.Context, q school.Queries, pupilID string, pf school.Platform, attrs []string) error {
	q.AfterCommit(func(context.Context) {
		r.mu.Lock()
		r.Got = append(r.Got, append([]string{pupilID, pf.ID}, attrs...))
		r.mu.Unlock()
	})
	return r.inner.Record(ctx, q, pupilID, pf, attrs)
}

type SAMLHarness struct {
	t        *testing.T
	Store    school.Store
	Server   *httptest.Server
	SAML     *idpsaml.IdP
	Keys     *idpsaml.StoreKeys
	Sealer   *school.Sealer // seals the IdP's SSO flows
	Sessions *Sessions
	Releases *Releases
	School   school.School
	Pupil    school.Pupil
	IdPMeta  *saml.EntityDescriptor
	Secret   []byte
}

func NewSAMLHarness(t testing.TB) *SAMLHarness {
	return NewSAMLHarnessWith(t, sqlstore.Options{})
}

// NewSAMLHarnessWith is NewSAMLHarness on a SQLite store opened with opt
// (e.g. a Counter, to count what a flow asks of the database).
func NewSAMLHarnessWith(t testing.TB, opt sqlstore.Options) *SAMLHarness {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "elevid.db"), opt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	sch, err := st.CreateSchool(ctx, school.School{Code: "demo", Name: "Demo Skole", Domain: "demo.elevid.dk"})
	if err != nil {
		t.Fatal(err)
	}
	class, err := st.CreateClass(ctx, school.Class{SchoolID: sch.ID, Name: "7A"})
	if err != nil {
		t.Fatal(err)
	}
	pupil, err := st.CreatePupil(ctx, school.Pupil{SchoolID: sch.ID, GivenName: "Ida", FamilyName: "Hansen", ClassIDs: []string{class.ID}, Status: school.PupilActive})
	if err != nil {
		t.Fatal(err)
	}
	return NewSAMLHarnessOn(t, st, sch, pupil)
}

// NewSAMLHarnessOn serves the SAML IdP on st for a pupil that exists there
// (the OIDC harness's, in tests that sign in over both protocols).
func NewSAMLHarnessOn(t testing.TB, st school.Store, sch school.School, pupil school.Pupil) *SAMLHarness {
	ctx := context.Background()
	sealer, err := school.NewSealer(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	h := &SAMLHarness{Store: st, Sessions: &Sessions{st: st}, School: sch, Pupil: pupil}
	if tt, ok := t.(*testing.T); ok {
		h.t = tt
	}
	h.Keys = &idpsaml.StoreKeys{Store: st, Sealer: sealer}
	h.Secret, err = release.PairwiseSecret(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	h.Sealer = sealer
	h.Releases = &Releases{inner: release.Log{}}
	var handler http.Handler
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handler.ServeHTTP(w, r) }))
	t.Cleanup(h.Server.Close)
	h.SAML, err = idpsaml.New(idpsaml.Options{
		BaseURL: h.Server.URL, Store: st, Site: webtest.NewSite(t), Sessions: h.Sessions,
		Keys: h.Keys, Sealer: sealer, PairwiseSecret: h.Secret, Releases: h.Releases, Logger: testLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.SAML.Mount(mux)
	cop := http.NewCrossOriginProtection()
	for _, p := range []string{"POST /saml/sso", "POST /saml/slo"} {
		cop.AddInsecureBypassPattern(p)
	}
	handler = cop.Handler(mux)

	resp := h.Get(t, "/saml/metadata", "")
	body := ReadAll(t, resp)
	if resp.StatusCode != 200 {
		t.Fatalf("metadata: %d %s", resp.StatusCode, body)
	}
	h.IdPMeta = &saml.EntityDescriptor{}
	if err := xml.Unmarshal([]byte(body), h.IdPMeta); err != nil {
		t.Fatal(err)
	}
	return h
}

// client never follows redirects: tests look at each hop.
var client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func (h *SAMLHarness) Do(t testing.TB, req *http.Request, sid string) *http.Response {
	t.Helper()
	if sid != "" {
		req.AddCookie(&http.Cookie{Name: "sid", Value: sid})
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func (h *SAMLHarness) Get(t testing.TB, pathOrURL, sid string) *http.Response {
	t.Helper()
	u := pathOrURL
	if strings.HasPrefix(u, "/") {
		u = h.Server.URL + u
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return h.Do(t, req, sid)
}

// PostCrossSite posts a form the way a browser does from another site:
// Sec-Fetch-Site cross-site, and no SameSite=Lax cookie.
func (h *SAMLHarness) PostCrossSite(t testing.TB, path string, form url.Values) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, h.Server.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://sp.example")
	return h.Do(t, req, "")
}

func ReadAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var (
	formRE  = regexp.MustCompile(`<form method="post" action="([^"]+)" id="auto-post-form">`)
	InputRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// PostedForm extracts the auto-post form of a saml-post page.
func PostedForm(t testing.TB, body string) (string, url.Values) {
	t.Helper()
	m := formRE.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no saml-post form in:\n%s", body)
	}
	v := url.Values{}
	for _, in := range InputRE.FindAllStringSubmatch(body, -1) {
		v.Set(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	return html.UnescapeString(m[1]), v
}

type SPOptions struct {
	EntityID string
	// Spec are the registration's options (Name, Metadata and Attributes
	// are the harness's).
	Spec    idpsaml.PlatformSpec
	Attrs   []string
	noSign  bool // the SP does not sign its AuthnRequests
	Consent bool
	SOAPSLO string // a SOAP single logout service to publish
}

// SP is a crewjam ServiceProvider registered with the harness's IdP.
type SP struct {
	*saml.ServiceProvider
	Platform school.Platform
	SPKey    *rsa.PrivateKey
	cert     *x509.Certificate
}

func NewKeyCert(t testing.TB, cn string) (*rsa.PrivateKey, *x509.Certificate) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

func (h *SAMLHarness) NewSP(t testing.TB, o SPOptions) *SP {
	t.Helper()
	if o.EntityID == "" {
		o.EntityID = "https://sp.example/saml/metadata"
	}
	base, _ := url.Parse(strings.TrimSuffix(o.EntityID, "/saml/metadata"))
	key, cert := NewKeyCert(t, base.Host)
	acs, slo, md := *base, *base, *base
	acs.Path, slo.Path, md.Path = "/saml/acs", "/saml/slo", "/saml/metadata"
	sp := &saml.ServiceProvider{
		EntityID: o.EntityID, Key: key, Certificate: cert, MetadataURL: md, AcsURL: acs, SloURL: slo,
		IDPMetadata: h.IdPMeta, AuthnNameIDFormat: saml.PersistentNameIDFormat, AllowIDPInitiated: true,
		LogoutBindings:                   []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
		AssertionConsumerServiceBindings: []string{saml.HTTPPostBinding},
	}
	if !o.noSign {
		sp.SignatureMethod = dsig.RSASHA256SignatureMethod
	}
	meta := sp.Metadata()
	if o.SOAPSLO != "" {
		meta.SPSSODescriptors[0].SingleLogoutServices = append(meta.SPSSODescriptors[0].SingleLogoutServices,
			saml.Endpoint{Binding: saml.SOAPBinding, Location: o.SOAPSLO})
	}
	mdXML, err := xml.MarshalIndent(meta, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	attrs := o.Attrs
	if attrs == nil {
		attrs = idpsaml.AttributeNames
	}
	spec := o.Spec
	spec.Name, spec.Metadata = "Platform "+base.Host, mdXML
	for _, a := range attrs {
		spec.Attributes = append(spec.Attributes, school.AttributeGrant{Name: a, JustificationDA: "nødvendig i testen", JustificationEN: "needed in the test"})
	}
	if _, _, _, err := idpsaml.RegisterPlatform(context.Background(), h.Store, spec); err != nil {
		t.Fatalf("register SAML platform: %v", err)
	}
	p, err := h.Store.PlatformByClientID(context.Background(), o.EntityID)
	if err != nil {
		t.Fatal(err)
	}
	if o.Consent {
		h.Consent(t, p.ID)
	}
	return &SP{ServiceProvider: sp, Platform: p, SPKey: key, cert: cert}
}

// Consent records a guardian's grant for the platform, with the pupil's
// enrolment flow consented (as package guardian leaves it).
func (h *SAMLHarness) Consent(t testing.TB, platformID string) {
	t.Helper()
	ctx := context.Background()
	p, err := h.Store.GetPupil(ctx, h.Pupil.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.GuardianIDs) == 0 {
		g, err := h.Store.CreateGuardian(ctx, school.Guardian{SchoolID: p.SchoolID, Name: "Mor"})
		if err != nil {
			t.Fatal(err)
		}
		if p, err = h.Store.UpdatePupil(ctx, p.ID, func(p school.Pupil) (school.Pupil, error) { p.GuardianIDs = []string{g.ID}; return p, nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Store.PutEnrolment(ctx, school.Enrolment{PupilID: p.ID, State: school.EnrolmentConsented, Rule: school.ConsentAny}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.Store.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: p.SchoolID, PlatformID: platformID, ActivatedBy: "test"}, true); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Store.SetConsent(ctx, school.Consent{PupilID: p.ID, GuardianID: p.GuardianIDs[0], PlatformID: platformID, Decision: school.DecisionGranted}); err != nil {
		t.Fatal(err)
	}
}

// RedirectRequest returns the URL a browser is sent to with a new
// AuthnRequest of sp for the IdP's ssoURL (HTTP-Redirect binding, signed
// when sp signs its requests, answer by HTTP-POST) and the request's id.
func (sp *SP) RedirectRequest(t testing.TB, ssoURL, relayState string) (u, requestID string) {
	t.Helper()
	authn, err := sp.MakeAuthenticationRequest(ssoURL, saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		t.Fatal(err)
	}
	redirect, err := authn.Redirect(relayState, sp.ServiceProvider)
	if err != nil {
		t.Fatal(err)
	}
	return redirect.String(), authn.ID
}

// ACS posts what the IdP's form carries to the SP, as the browser would,
// and returns the SP's verdict.
func (sp *SP) ACS(t testing.TB, action string, form url.Values, requestIDs ...string) (*saml.Assertion, error) {
	t.Helper()
	if action != sp.AcsURL.String() {
		t.Fatalf("form posts to %q, want the ACS %q", action, sp.AcsURL.String())
	}
	req := httptest.NewRequest(http.MethodPost, action, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if err := req.ParseForm(); err != nil {
		t.Fatal(err)
	}
	return sp.ParseResponse(req, requestIDs)
}

// AttrValues maps friendly names to values (NameID values for
// eduPersonTargetedID).
func AttrValues(a *saml.Assertion) map[string][]string {
	out := map[string][]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			for _, v := range at.Values {
				val := v.Value
				if v.NameID != nil {
					val = v.NameID.Value + "|" + v.NameID.NameQualifier + "|" + v.NameID.SPNameQualifier
				}
				out[at.FriendlyName] = append(out[at.FriendlyName], val)
				out["name:"+at.FriendlyName] = []string{at.Name}
			}
		}
	}
	return out
}

func EncodeEl(t testing.TB, el *etree.Element) string {
	t.Helper()
	return base64.StdEncoding.EncodeToString(ElBytes(t, el))
}

func ElBytes(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el)
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testLogger() *slog.Logger {
	if os.Getenv("SAML_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}
