package bench

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/school"
)

const (
	benchSAMLEntity = "https://bench.invalid/saml"
	benchSAMLACS    = "https://bench.invalid/saml/acs" // never called
)

// benchSAMLAttributes are the attributes the bench SP is granted, and
// benchSAMLFriendly their FriendlyNames in a response, which must carry
// each of them with a value.
var (
	benchSAMLAttributes = []string{"givenName", "groups", "pairwise-id", "schacHomeOrganization"}
	benchSAMLFriendly   = []string{"givenName", "isMemberOf", "pairwise-id", "schacHomeOrganization"}
)

// FixtureSAML is the bench SAML service provider: its entity id, its
// assertion consumer service (never called) and its signing key pair
// (throw-away, like the pupils' passkeys).
type FixtureSAML struct {
	EntityID string `json:"entity_id"`
	ACS      string `json:"acs"`
	KeyDER   []byte `json:"key_der"` // PKCS#8
	CertDER  []byte `json:"cert_der"`
}

// prepareSAML registers (or re-keys) the bench SAML service provider,
// which signs its AuthnRequests and is answered unencrypted with
// benchSAMLAttributes, and activates it for sch.
func prepareSAML(ctx context.Context, st school.Store, sch school.School) (*FixtureSAML, school.Platform, error) {
	fs, err := newFixtureSAML()
	if err != nil {
		return nil, school.Platform{}, err
	}
	sp, err := fs.serviceProvider(nil)
	if err != nil {
		return nil, school.Platform{}, err
	}
	// Signing key only (so the answers are not encrypted), and signed
	// requests announced.
	ed := sp.Metadata()
	signed := true
	for i := range ed.SPSSODescriptors {
		d := &ed.SPSSODescriptors[i]
		d.KeyDescriptors = slices.DeleteFunc(d.KeyDescriptors, func(k saml.KeyDescriptor) bool { return k.Use != "signing" })
		d.AuthnRequestsSigned = &signed
	}
	md, err := xml.Marshal(ed)
	if err != nil {
		return nil, school.Platform{}, err
	}
	_, set, err := idpsaml.ParseSPMetadata(md)
	if err != nil {
		return nil, school.Platform{}, err
	}
	set.Encrypt, set.WantSignedRequests = false, true
	raw, err := json.Marshal(set)
	if err != nil {
		return nil, school.Platform{}, err
	}
	var grants []school.AttributeGrant
	for _, a := range benchSAMLAttributes {
		grants = append(grants, school.AttributeGrant{Name: a, JustificationDA: "bench", JustificationEN: "bench"})
	}
	pf, err := st.PlatformByClientID(ctx, benchSAMLEntity)
	if errors.Is(err, school.ErrNotFound) {
		pf, err = st.CreatePlatform(ctx, school.Platform{Name: "Bench SAML platform", Protocol: school.ProtocolSAML, ClientID: benchSAMLEntity,
			Settings: raw, Attributes: grants, SubjectType: school.SubjectPairwise})
	} else if err == nil {
		pf, err = st.UpdatePlatform(ctx, pf.ID, func(p school.Platform) (school.Platform, error) {
			p.Settings = raw
			return p, nil
		})
	}
	if err != nil {
		return nil, school.Platform{}, fmt.Errorf("bench saml platform: %w", err)
	}
	if _, err := st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: sch.ID, PlatformID: pf.ID, ActivatedBy: "bench"}, true); err != nil {
		return nil, school.Platform{}, err
	}
	return fs, pf, nil
}

// newFixtureSAML is the bench SP with a new key pair.
func newFixtureSAML() (*FixtureSAML, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ElevID bench SP"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return &FixtureSAML{EntityID: benchSAMLEntity, ACS: benchSAMLACS, KeyDER: keyDER, CertDER: der}, nil
}

// serviceProvider is the bench SP as crewjam/saml sees it, trusting the
// IdP metadata idpMD (nil when only the SP's own metadata is wanted).
func (f *FixtureSAML) serviceProvider(idpMD *saml.EntityDescriptor) (*saml.ServiceProvider, error) {
	k, err := x509.ParsePKCS8PrivateKey(f.KeyDER)
	if err != nil {
		return nil, fmt.Errorf("bench saml key: %w", err)
	}
	key, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, errors.New("bench saml key: not RSA")
	}
	cert, err := x509.ParseCertificate(f.CertDER)
	if err != nil {
		return nil, fmt.Errorf("bench saml certificate: %w", err)
	}
	acs, _ := url.Parse(f.ACS)
	entity, _ := url.Parse(f.EntityID)
	sp := &saml.ServiceProvider{EntityID: f.EntityID, Key: key, Certificate: cert, AcsURL: *acs, MetadataURL: *entity,
		IDPMetadata: idpMD, SignatureMethod: dsig.RSASHA256SignatureMethod, AuthnNameIDFormat: saml.PersistentNameIDFormat,
		ValidateRequestID: requireSignedResponse}
	return sp, nil
}

// SAMLConfig is one `elevid bench saml` run.
type SAMLConfig struct {
	BaseURL     string
	Fixture     *Fixture
	Concurrency int
	Duration    time.Duration
	// ServerPID, when not 0, is the server process whose CPU time per
	// response is reported (read from /proc); when 0 the process
	// listening on BaseURL's port is looked up in /proc, if it can be.
	ServerPID int
}

// SAMLResult is the outcome of a SAML run.
type SAMLResult struct {
	Responses, Errors int
	Elapsed           time.Duration
	P50, P95, P99     time.Duration
	FirstError        string
	// ServerPID and ServerCPUPerResponse are the server's process and its
	// CPU time per response (0 when not known).
	ServerPID            int
	ServerCPUPerResponse time.Duration
	// ClientCPUPerResponse is this process's CPU time per response.
	ClientCPUPerResponse time.Duration
	// ResponseSigned and AssertionSigned report that every checked
	// response had a valid signature on the Response and on the
	// Assertion.
	ResponseSigned, AssertionSigned bool
}

// Print writes r in a readable form.
func (r SAMLResult) Print(w io.Writer) {
	fmt.Fprintf(w, "responses %d in %.1fs: %.0f responses/s, errors %d\n", r.Responses, r.Elapsed.Seconds(), float64(r.Responses)/r.Elapsed.Seconds(), r.Errors)
	fmt.Fprintf(w, "latency p50 %.1fms p95 %.1fms p99 %.1fms (AuthnRequest → signed Response, 2 HTTP requests)\n", ms(r.P50), ms(r.P95), ms(r.P99))
	if r.Responses > 0 {
		fmt.Fprintf(w, "signatures: response %t, assertion %t (every response checked with the IdP metadata's certificate)\n", r.ResponseSigned, r.AssertionSigned)
	}
	if r.ServerCPUPerResponse > 0 {
		fmt.Fprintf(w, "server CPU (pid %d): %.2f ms per response\n", r.ServerPID, ms(r.ServerCPUPerResponse))
	} else {
		fmt.Fprintln(w, "server CPU: not known (give --server-pid, or run on the server's machine)")
	}
	if r.ClientCPUPerResponse > 0 {
		fmt.Fprintf(w, "CPU of this process: %.2f ms per response\n", ms(r.ClientCPUPerResponse))
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
}

// RunSAML runs SP-initiated SAML logins: each of Concurrency virtual
// pupils signs in once with its passkey, then repeats AuthnRequest
// (HTTP-Redirect, signed) → Response (read from ElevID's auto-posting
// form) until Duration is over. Every response is checked: Issuer,
// Destination, InResponseTo, audience, validity, and both the Response's
// and the Assertion's signature against the IdP metadata's certificate
// (crewjam/saml, and that neither signature is missing), and the
// released attributes.
// The sign-in rounds are not counted.
func RunSAML(ctx context.Context, cfg SAMLConfig) (SAMLResult, error) {
	f := cfg.Fixture
	if cfg.Concurrency <= 0 || cfg.Duration <= 0 || f == nil {
		return SAMLResult{}, errors.New("bench saml: concurrency, duration and fixture are required")
	}
	if f.SAML == nil {
		return SAMLResult{}, errors.New("bench saml: the fixture has no SAML service provider (run `elevid bench prepare` again)")
	}
	n, err := newNodes([]string{strings.TrimSuffix(cfg.BaseURL, "/")})
	if err != nil {
		return SAMLResult{}, err
	}
	transport := newTransport(cfg.Concurrency)
	idpMD, err := fetchIdPMetadata(ctx, &http.Client{Transport: transport, Timeout: 10 * time.Second}, n.url("/saml/metadata"))
	if err != nil {
		return SAMLResult{}, err
	}
	sp, err := f.SAML.serviceProvider(idpMD)
	if err != nil {
		return SAMLResult{}, err
	}
	redirect := &authnRedirect{key: sp.Key}
	pid := cfg.ServerPID
	if pid == 0 {
		pid = listenerPID(cfg.BaseURL)
	}
	// Sign every pupil in first (not measured).
	browsers := make([]*samlBrowser, cfg.Concurrency)
	for i := range browsers {
		jar, _ := cookiejar.New(nil)
		b := &samlBrowser{n: n, f: f, p: f.Pupils[i%len(f.Pupils)], sp: sp, redirect: redirect,
			c: &http.Client{Transport: transport, Jar: jar, Timeout: 10 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
		if err := b.sso(ctx, true); err != nil {
			return SAMLResult{}, fmt.Errorf("bench saml: first sign-in of pupil %d: %w", i, err)
		}
		browsers[i] = b
	}
	var (
		mu         sync.Mutex
		lat        []time.Duration
		errs       atomic.Int64
		firstError atomic.Value
	)
	srv0, cpu0 := pidCPU(pid), processCPU()
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for _, b := range browsers {
		wg.Go(func() {
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if err := b.sso(ctx, false); err != nil {
					errs.Add(1)
					firstError.CompareAndSwap(nil, err.Error())
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		})
	}
	wg.Wait()
	r := SAMLResult{Responses: len(lat), Errors: int(errs.Load()), Elapsed: time.Since(start), ServerPID: pid,
		ResponseSigned: len(lat) > 0, AssertionSigned: len(lat) > 0}
	if s, ok := firstError.Load().(string); ok {
		r.FirstError = s
	}
	slices.Sort(lat)
	if k := len(lat); k > 0 {
		r.P50, r.P95, r.P99 = lat[k*50/100], lat[min(k-1, k*95/100)], lat[min(k-1, k*99/100)]
		all := time.Duration(k + r.Errors)
		r.ClientCPUPerResponse = (processCPU() - cpu0) / all
		if pid != 0 && srv0 >= 0 {
			if srv1 := pidCPU(pid); srv1 >= srv0 {
				r.ServerCPUPerResponse = (srv1 - srv0) / all
			}
		}
	}
	return r, nil
}

// samlBrowser is one virtual pupil's browser with its own cookie jar.
type samlBrowser struct {
	n        *nodes
	f        *Fixture
	p        FixturePupil
	sp       *saml.ServiceProvider
	redirect *authnRedirect
	c        *http.Client
}

var samlFormRE = regexp.MustCompile(`<form method="post" action="([^"]+)" id="auto-post-form">`)

// sso runs one SP-initiated login: a signed AuthnRequest by
// HTTP-Redirect, ElevID's redirects (and, when login is true, the
// passkey login they lead to), and the checks of the Response in the
// auto-posting form.
func (b *samlBrowser) sso(ctx context.Context, login bool) error {
	req, err := b.sp.MakeAuthenticationRequest(b.sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return err
	}
	relay := school.NewID()[:16]
	next, err := b.redirect.url(req, relay)
	if err != nil {
		return err
	}
	for range 8 {
		pu, err := url.Parse(next)
		if err != nil {
			return err
		}
		if pu.Path == "/login" {
			if !login {
				return errors.New("sent to /login: the pupil's session did not hold")
			}
			if next, err = passkeyLogin(ctx, b.c, b.n, b.f, b.p, pu.Query().Get("return_to")); err != nil {
				return err
			}
			continue
		}
		resp, err := get(ctx, b.c, b.n.url(next))
		if err != nil {
			return err
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode/100 == 3 {
			next = resp.Header.Get("Location")
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", pu.Path, resp.StatusCode)
		}
		return b.check(string(body), req.ID, relay)
	}
	return errors.New("too many redirects")
}

// authnRedirect builds the URLs that send the bench SP's AuthnRequests by
// the HTTP-Redirect binding, signed, as crewjam/saml's
// (*AuthnRequest).Redirect does, but with DEFLATE writers from a pool: a
// new one per request (about 600 KB of state) cost an eighth of this
// process's CPU. It is safe for concurrent use.
type authnRedirect struct {
	key      crypto.Signer // RSA, for RSA-SHA256
	deflates sync.Pool     // of *flate.Writer
}

// url returns req's Destination with the query of saml-bindings-2.0-os
// §3.4.4: SAMLRequest (req's XML without a Signature, DEFLATE, base64,
// URL-encoded), RelayState relay, SigAlg RSA-SHA256 and Signature, an
// RSASSA-PKCS1-v1_5 SHA-256 signature of "SAMLRequest=…&RelayState=…&
// SigAlg=…" as sent (§3.4.4.1), base64 and URL-encoded.
func (r *authnRedirect) url(req *saml.AuthnRequest, relay string) (string, error) {
	unsigned := *req
	unsigned.Signature = nil
	doc := etree.NewDocument()
	doc.SetRoot(unsigned.Element())
	var deflated bytes.Buffer
	// A writer is Reset once per use, when taken (Reset clears 640 KB of
	// tables); the one put back still points at the last buffer.
	fw, _ := r.deflates.Get().(*flate.Writer)
	if fw == nil {
		var err error
		// The level crewjam/saml uses, so the request is the same.
		if fw, err = flate.NewWriter(&deflated, flate.BestCompression); err != nil {
			return "", err
		}
	} else {
		fw.Reset(&deflated)
	}
	_, err := doc.WriteTo(fw)
	if err == nil {
		err = fw.Close()
	}
	r.deflates.Put(fw)
	if err != nil {
		return "", err
	}
	query := "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(deflated.Bytes())) +
		"&RelayState=" + url.QueryEscape(relay) + "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
	digest := sha256.Sum256([]byte(query))
	sig, err := r.key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		return "", err
	}
	query += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	u, err := url.Parse(req.Destination)
	if err != nil {
		return "", err
	}
	if u.RawQuery != "" {
		query = u.RawQuery + "&" + query
	}
	u.RawQuery = query
	return u.String(), nil
}
