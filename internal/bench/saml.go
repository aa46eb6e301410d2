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
	"runtime"
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
	// PresignRate is the responses per second the AuthnRequests signed
	// before the timed window are to last for (0: DefaultPresignRate).
	PresignRate int
}

// DefaultPresignRate is the rate, in responses per second, the
// AuthnRequests signed before the timed window are counted for: twice
// what 2 cores serving and generating reach, so that none need be signed
// inside the window.
const DefaultPresignRate = 1000

// maxKeptBytes bounds the response pages kept inside the timed window
// for checking after it (about 10 KB each): at a few hundred responses
// per second that is more than 20 s. Past it a page is checked on the
// spot, inside the window, and counted as such. It stays well under the
// 256 MiB soft memory limit `elevid bench saml` runs with.
const maxKeptBytes = 128 << 20

// SAMLResult is the outcome of a SAML run.
type SAMLResult struct {
	// Responses passed every check; Errors are the exchanges that failed
	// inside the window and the responses that failed a check after it.
	Responses, Errors int
	Elapsed           time.Duration
	// P50, P95 and P99 are the latencies of the HTTP exchanges (the
	// signed AuthnRequest sent, ElevID's redirects followed, the
	// Response's page read) of the responses that passed the checks.
	P50, P95, P99 time.Duration
	// FirstError is the earliest error, by when its exchange ended.
	FirstError string
	// ServerPID and ServerCPUPerResponse are the server's process and its
	// CPU time per response inside the window (0 when not known).
	ServerPID            int
	ServerCPUPerResponse time.Duration
	// ClientCPUPerResponse is this process's CPU time per response inside
	// the window.
	ClientCPUPerResponse time.Duration
	// ResponseSigned and AssertionSigned report that every checked
	// response had a valid signature on the Response and on the
	// Assertion.
	ResponseSigned, AssertionSigned bool

	// Presigned AuthnRequests were signed before the window, in
	// PresignElapsed and PresignCPU of this process, for PresignRate
	// responses per second; PresignUsed of them were sent.
	Presigned, PresignUsed, PresignRate int
	PresignElapsed, PresignCPU          time.Duration
	// SignedInWindow AuthnRequests were signed inside the window because
	// the pre-signed ones ran out (PoolRanOut) or were too old to send
	// (PoolTooOld, older than PresignMaxAge).
	SignedInWindow, PoolRanOut, PoolTooOld int
	PresignMaxAge                          time.Duration
	// Checked responses were checked after the window, in CheckElapsed
	// and CheckCPU of this process; CheckedInWindow were checked inside
	// it because the kept pages had reached KeptLimit bytes. KeptBytes is
	// the most kept at once.
	Checked, CheckedInWindow int
	CheckElapsed, CheckCPU   time.Duration
	KeptBytes, KeptLimit     int64
}

// Print writes r in a readable form.
func (r SAMLResult) Print(w io.Writer) {
	fmt.Fprintf(w, "responses %d in %.1fs: %.0f responses/s, errors %d\n", r.Responses, r.Elapsed.Seconds(), float64(r.Responses)/r.Elapsed.Seconds(), r.Errors)
	fmt.Fprintf(w, "latency p50 %.1fms p95 %.1fms p99 %.1fms (pre-signed AuthnRequest sent → page with the signed Response read, 2 HTTP requests)\n", ms(r.P50), ms(r.P95), ms(r.P99))
	if r.Responses > 0 {
		fmt.Fprintf(w, "signatures: response %t, assertion %t (every response checked with the IdP metadata's certificate)\n", r.ResponseSigned, r.AssertionSigned)
	}
	if r.ServerCPUPerResponse > 0 {
		fmt.Fprintf(w, "server CPU (pid %d): %.2f ms per response\n", r.ServerPID, ms(r.ServerCPUPerResponse))
	} else {
		fmt.Fprintln(w, "server CPU: not known (give --server-pid, or run on the server's machine)")
	}
	if r.ClientCPUPerResponse > 0 {
		fmt.Fprintf(w, "CPU of this process: %.2f ms per response inside the window (HTTP exchanges; %d AuthnRequests signed and %d responses checked there)\n",
			ms(r.ClientCPUPerResponse), r.SignedInWindow, r.CheckedInWindow)
	}
	fmt.Fprintf(w, "before the window: %d AuthnRequests signed (for %d responses/s) in %.1fs, %.2f ms CPU each; %d sent\n",
		r.Presigned, r.PresignRate, r.PresignElapsed.Seconds(), ms(per(r.PresignCPU, r.Presigned)), r.PresignUsed)
	if r.SignedInWindow > 0 {
		fmt.Fprintf(w, "inside the window: %d AuthnRequests signed on the spot (%d when the pre-signed ran out, %d older than %s; raise --presign-rate or shorten --duration)\n",
			r.SignedInWindow, r.PoolRanOut, r.PoolTooOld, r.PresignMaxAge)
	}
	if r.CheckedInWindow > 0 {
		fmt.Fprintf(w, "inside the window: %d responses checked on the spot (the kept pages reached %d MiB)\n", r.CheckedInWindow, r.KeptLimit>>20)
	}
	fmt.Fprintf(w, "after the window: %d responses checked in %.1fs, %.2f ms CPU each (all checks, validity as of each response's arrival; %.0f MiB kept)\n",
		r.Checked, r.CheckElapsed.Seconds(), ms(per(r.CheckCPU, r.Checked)), float64(r.KeptBytes)/(1<<20))
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
}

// per is d divided among n (0 when n is 0).
func per(d time.Duration, n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return d / time.Duration(n)
}

// RunSAML runs SP-initiated SAML logins: each of Concurrency virtual
// pupils signs in once with its passkey; then the bench SP signs the
// AuthnRequests (HTTP-Redirect) for the run, enough for PresignRate
// responses per second over Duration; then, in the timed window of
// Duration, each pupil's browser repeats sending one of them and reading
// the Response from ElevID's auto-posting form, keeping the page; after
// the window every kept Response is checked: Issuer, Destination,
// InResponseTo, audience, validity as of its arrival, and both the
// Response's and the Assertion's signature against the IdP metadata's
// certificate (crewjam/saml, and that neither signature is missing), and
// the released attributes. What the service provider does on its own
// machine, signing its request and checking the answer, is thus outside
// the window, except when the pre-signed requests run out or grow too old
// to send, or the kept pages reach maxKeptBytes: those are done on the
// spot and counted. The sign-in rounds are not counted.
func RunSAML(ctx context.Context, cfg SAMLConfig) (SAMLResult, error) {
	f := cfg.Fixture
	if cfg.Concurrency <= 0 || cfg.Duration <= 0 || f == nil {
		return SAMLResult{}, errors.New("bench saml: concurrency, duration and fixture are required")
	}
	if cfg.PresignRate < 0 {
		return SAMLResult{}, errors.New("bench saml: the pre-signing rate must not be negative")
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

	// Before the window: the service provider signs its requests.
	rate := cfg.PresignRate
	if rate == 0 {
		rate = DefaultPresignRate
	}
	pool := &authnPool{sp: sp, redirect: redirect, now: time.Now, maxAge: presignMaxAge()}
	count := presignCount(rate, cfg.Duration, pool.maxAge)
	cpuB, startB := processCPU(), time.Now()
	if err := pool.fill(ctx, count); err != nil {
		return SAMLResult{}, fmt.Errorf("bench saml: signing the AuthnRequests: %w", err)
	}
	r := SAMLResult{Presigned: count, PresignRate: rate, PresignElapsed: time.Since(startB), PresignCPU: processCPU() - cpuB,
		PresignMaxAge: pool.maxAge, KeptLimit: maxKeptBytes, ServerPID: pid}
	// The signing's garbage is collected now, not inside the window.
	runtime.GC()

	// The window: HTTP exchanges only.
	var (
		mu       sync.Mutex
		kept     []samlKept
		lat      []time.Duration
		errs     atomic.Int64
		first    firstError
		keptSize atomic.Int64
		onSpot   atomic.Int64
	)
	srv0, cpu0 := pidCPU(pid), processCPU()
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for _, b := range browsers {
		wg.Go(func() {
			var mine []samlKept
			var mineLat []time.Duration
			fail := func(err error) {
				errs.Add(1)
				first.note(time.Now(), err)
			}
			for time.Now().Before(deadline) && ctx.Err() == nil {
				a, err := pool.take()
				if err != nil {
					fail(err)
					continue
				}
				t0 := time.Now()
				page, err := b.exchange(ctx, a.url, false)
				t1 := time.Now()
				if err != nil {
					fail(err)
					continue
				}
				k := samlKept{b: b, page: page, requestID: a.id, relay: a.relay, received: t1, latency: t1.Sub(t0)}
				if keptSize.Add(int64(len(page))) <= maxKeptBytes {
					mine = append(mine, k)
					continue
				}
				keptSize.Add(-int64(len(page)))
				onSpot.Add(1)
				if err := k.check(); err != nil {
					fail(err)
					continue
				}
				mineLat = append(mineLat, k.latency)
			}
			mu.Lock()
			kept = append(kept, mine...)
			lat = append(lat, mineLat...)
			mu.Unlock()
		})
	}
	wg.Wait()
	r.Elapsed = time.Since(start)
	cpu1, srv1 := processCPU(), pidCPU(pid)
	exchanges := len(kept) + len(lat) + int(errs.Load())
	r.ClientCPUPerResponse = per(cpu1-cpu0, exchanges)
	if pid != 0 && srv0 >= 0 && srv1 >= srv0 {
		r.ServerCPUPerResponse = per(srv1-srv0, exchanges)
	}
	r.PresignUsed, r.PoolRanOut, r.PoolTooOld = pool.used(), int(pool.ranOut.Load()), int(pool.tooOld.Load())
	r.SignedInWindow = r.PoolRanOut + r.PoolTooOld
	r.CheckedInWindow = int(onSpot.Load())
	r.KeptBytes = keptSize.Load()

	// After the window: the service provider checks every response.
	startC := time.Now()
	passed, failed := checkKept(kept, &first)
	r.Checked, r.CheckElapsed, r.CheckCPU = len(kept), time.Since(startC), processCPU()-cpu1
	lat = append(lat, passed...)
	r.Responses, r.Errors = len(lat), int(errs.Load())+failed
	r.ResponseSigned, r.AssertionSigned = len(lat) > 0, len(lat) > 0
	r.FirstError = first.msg
	slices.Sort(lat)
	if k := len(lat); k > 0 {
		r.P50, r.P95, r.P99 = lat[k*50/100], lat[min(k-1, k*95/100)], lat[min(k-1, k*99/100)]
	}
	return r, nil
}

// presignMaxAge is how old a pre-signed AuthnRequest may be when sent:
// ElevID (crewjam/saml's IdpAuthnRequest.Validate) refuses one issued
// more than saml.MaxIssueDelay (90 s) ago; a third of that is left for
// the server's clock being ahead of this machine's.
func presignMaxAge() time.Duration { return saml.MaxIssueDelay * 2 / 3 }

// presignCount is how many AuthnRequests to sign before a window of d
// for rate responses per second: rate·d, but no more than can be sent
// before they are maxAge old at that rate (counting the time to sign
// them, about 0.5 ms each on 2 cores); more would be wasted.
func presignCount(rate int, d, maxAge time.Duration) int {
	return int(float64(rate) * min(d, maxAge/2).Seconds())
}

// firstError is the earliest of the errors noted. It is safe for
// concurrent use.
type firstError struct {
	mu  sync.Mutex
	at  time.Time
	msg string
}

// note records err, which happened at at, if it is the earliest so far.
func (f *firstError) note(at time.Time, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.msg == "" || at.Before(f.at) {
		f.at, f.msg = at, err.Error()
	}
}

// authnPool is the bench SP's AuthnRequests for a run, as HTTP-Redirect
// URLs signed before the timed window, each handed out once. It is safe
// for concurrent use once filled.
type authnPool struct {
	sp       *saml.ServiceProvider
	redirect *authnRedirect
	now      func() time.Time
	// maxAge is how old a request may be when handed out; an older one is
	// not sent, and one signed on the spot is handed out instead.
	maxAge time.Duration

	reqs           []signedAuthn
	next           atomic.Int64
	ranOut, tooOld atomic.Int64
}

// signedAuthn is one signed AuthnRequest: the URL that sends it, its ID
// and RelayState, and when it was issued.
type signedAuthn struct {
	url, id, relay string
	issued         time.Time
}

// signAuthn builds a new AuthnRequest of sp with its own ID and
// RelayState, signed into its HTTP-Redirect URL by r.
func signAuthn(sp *saml.ServiceProvider, r *authnRedirect) (signedAuthn, error) {
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(saml.HTTPRedirectBinding), saml.HTTPRedirectBinding, saml.HTTPPostBinding)
	if err != nil {
		return signedAuthn{}, err
	}
	relay := school.NewID()[:16]
	u, err := r.url(req, relay)
	if err != nil {
		return signedAuthn{}, err
	}
	return signedAuthn{url: u, id: req.ID, relay: relay, issued: req.IssueInstant}, nil
}

// fill signs n requests into the pool, on as many goroutines as there are
// cores.
func (p *authnPool) fill(ctx context.Context, n int) error {
	p.reqs = make([]signedAuthn, n)
	var first atomic.Value
	inParallel(n, func(i int) bool {
		if ctx.Err() != nil {
			return false
		}
		a, err := signAuthn(p.sp, p.redirect)
		if err != nil {
			first.CompareAndSwap(nil, err)
			return false
		}
		p.reqs[i] = a
		return true
	})
	if err, ok := first.Load().(error); ok {
		return err
	}
	return ctx.Err()
}

// inParallel calls f for 0 … n-1, each once, on as many goroutines as
// there are cores, until f returns false (then no further call starts).
func inParallel(n int, f func(i int) bool) {
	var (
		next atomic.Int64
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n && !stop.Load(); i = int(next.Add(1) - 1) {
				if !f(i) {
					stop.Store(true)
				}
			}
		})
	}
	wg.Wait()
}

// take hands out the next pre-signed request, each once; when none is
// left, or the next one is older than maxAge, it signs one on the spot
// and counts it (ranOut, tooOld).
func (p *authnPool) take() (signedAuthn, error) {
	if i := p.next.Add(1) - 1; i < int64(len(p.reqs)) {
		if a := p.reqs[i]; p.now().Sub(a.issued) <= p.maxAge {
			return a, nil
		}
		p.tooOld.Add(1)
	} else {
		p.ranOut.Add(1)
	}
	return signAuthn(p.sp, p.redirect)
}

// used is how many pre-signed requests were handed out.
func (p *authnPool) used() int {
	return int(min(p.next.Load(), int64(len(p.reqs)))) - int(p.tooOld.Load())
}

// samlKept is a page with a Response read inside the timed window, kept
// with what it is checked against after the window.
type samlKept struct {
	b                *samlBrowser
	page             []byte
	requestID, relay string
	// received is when the page was read, as of which the Response's
	// validity is checked; latency is how long its exchange took.
	received time.Time
	latency  time.Duration
}

// check checks k's Response as samlBrowser.check does, as of when it
// arrived.
func (k samlKept) check() error {
	return k.b.check(string(k.page), k.requestID, k.relay, k.received)
}

// checkKept checks every kept Response, on as many goroutines as there
// are cores: passed are the latencies of those that pass, failed the
// count of the others, whose errors are noted in first.
func checkKept(kept []samlKept, first *firstError) (passed []time.Duration, failed int) {
	errs := make([]error, len(kept))
	inParallel(len(kept), func(i int) bool {
		errs[i] = kept[i].check()
		return true
	})
	for i, err := range errs {
		if err != nil {
			failed++
			first.note(kept[i].received, err)
			continue
		}
		passed = append(passed, kept[i].latency)
	}
	return passed, failed
}

// samlBrowser is one virtual pupil's browser with its own cookie jar. It
// is used by one goroutine at a time, except check, which is safe for
// concurrent use.
type samlBrowser struct {
	n        *nodes
	f        *Fixture
	p        FixturePupil
	sp       *saml.ServiceProvider
	redirect *authnRedirect
	c        *http.Client
	buf      bytes.Buffer // the body being read
}

var samlFormRE = regexp.MustCompile(`<form method="post" action="([^"]+)" id="auto-post-form">`)

// sso runs one SP-initiated login on the spot: a signed AuthnRequest by
// HTTP-Redirect, ElevID's redirects (and, when login is true, the
// passkey login they lead to), and the checks of the Response in the
// auto-posting form.
func (b *samlBrowser) sso(ctx context.Context, login bool) error {
	a, err := signAuthn(b.sp, b.redirect)
	if err != nil {
		return err
	}
	page, err := b.exchange(ctx, a.url, login)
	if err != nil {
		return err
	}
	return b.check(string(page), a.id, a.relay, time.Now())
}

// exchange sends the browser to next, a signed AuthnRequest's URL,
// follows ElevID's redirects (and, when login is true, the passkey login
// they lead to) and returns the page that ends them, which must be
// answered with status 200: the auto-posting form of a Response.
func (b *samlBrowser) exchange(ctx context.Context, next string, login bool) ([]byte, error) {
	for range 8 {
		pu, err := url.Parse(next)
		if err != nil {
			return nil, err
		}
		if pu.Path == "/login" {
			if !login {
				return nil, errors.New("sent to /login: the pupil's session did not hold")
			}
			if next, err = passkeyLogin(ctx, b.c, b.n, b.f, b.p, pu.Query().Get("return_to")); err != nil {
				return nil, err
			}
			continue
		}
		resp, err := get(ctx, b.c, b.n.url(next))
		if err != nil {
			return nil, err
		}
		b.buf.Reset()
		_, err = b.buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 == 3 {
			next = resp.Header.Get("Location")
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: status %d", pu.Path, resp.StatusCode)
		}
		return bytes.Clone(b.buf.Bytes()), nil
	}
	return nil, errors.New("too many redirects")
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
