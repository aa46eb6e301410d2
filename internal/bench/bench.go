package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/internal/webauthntest"

	"github.com/descope/virtualwebauthn"
	"golang.org/x/oauth2"

	"github.com/elevid/elevid/idp/oidc"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/sqlstore"
)

// FixtureEnv names the environment variable with the fixture's path
// (DefaultFixture when unset).
const (
	FixtureEnv     = "ELEVID_BENCH_FIXTURE"
	DefaultFixture = "elevid-bench.json"
	benchClientID  = "elevid-bench"
	benchRedirect  = "https://bench.invalid/callback"
)

// Fixture is what the load generator needs to log pupils in.
type Fixture struct {
	ClientID     string         `json:"client_id"`
	ClientSecret string         `json:"client_secret"`
	RedirectURI  string         `json:"redirect_uri"`
	RPID         string         `json:"rp_id"`
	Origin       string         `json:"origin"`
	Pupils       []FixturePupil `json:"pupils"`
	// SAML is the bench SAML service provider (`elevid bench saml`).
	SAML *FixtureSAML `json:"saml,omitempty"`
}

// FixturePupil is one virtual pupil: the user handle and the passkey
// (private key included: these are throw-away bench pupils).
type FixturePupil struct {
	GivenName  string                     `json:"given_name,omitempty"`
	Handle     []byte                     `json:"handle"`
	Credential virtualwebauthn.Credential `json:"credential"`
}

// Prepare creates a bench school with n pupils, each enrolled, consented
// for a confidential bench OIDC platform and a bench SAML service
// provider (FixtureSAML) and holding a passkey, and returns the fixture. rpID and origin are the server's WebAuthn settings (e.g.
// "localhost", "http://localhost:8080"). Running it again adds pupils to
// the same school and platform (whose secret is then replaced).
func Prepare(ctx context.Context, st school.Store, rpID, origin string, n int) (*Fixture, error) {
	sch, err := st.SchoolByCode(ctx, "bench")
	if errors.Is(err, school.ErrNotFound) {
		sch, err = st.CreateSchool(ctx, school.School{Code: "bench", Name: "Bench School", Domain: "bench.elevid.test"})
	}
	if err != nil {
		return nil, err
	}
	secret := oidc.NewClientSecret()
	pf, err := st.PlatformByClientID(ctx, benchClientID)
	if errors.Is(err, school.ErrNotFound) {
		pf, secret, err = oidc.RegisterPlatform(ctx, st, oidc.PlatformSpec{
			Name: "Bench platform", ClientID: benchClientID, RedirectURIs: []string{benchRedirect}, Secret: secret,
			Attributes: []school.AttributeGrant{{Name: release.GivenName, JustificationDA: "bench", JustificationEN: "bench"}, {Name: release.Groups, JustificationDA: "bench", JustificationEN: "bench"}},
		})
	} else if err == nil {
		pf, err = st.UpdatePlatform(ctx, pf.ID, func(p school.Platform) (school.Platform, error) {
			var s oidc.Settings
			if err := json.Unmarshal(p.Settings, &s); err != nil {
				return p, err
			}
			s.SecretHash = oidc.HashClientSecret(secret)
			p.Settings, err = json.Marshal(s)
			return p, err
		})
	}
	if err != nil {
		return nil, err
	}
	class, err := st.CreateClass(ctx, school.Class{SchoolID: sch.ID, Name: "B" + school.NewID()[:4]})
	if err != nil {
		return nil, err
	}
	samlSP, samlPF, err := prepareSAML(ctx, st, sch)
	if err != nil {
		return nil, err
	}
	f := &Fixture{ClientID: benchClientID, ClientSecret: secret, RedirectURI: benchRedirect, RPID: rpID, Origin: origin, SAML: samlSP}
	if _, err := st.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: sch.ID, PlatformID: pf.ID, ActivatedBy: "bench"}, true); err != nil {
		return nil, err
	}
	for i := range n {
		g, err := st.CreateGuardian(ctx, school.Guardian{SchoolID: sch.ID, Name: fmt.Sprintf("Guardian %d", i)})
		if err != nil {
			return nil, err
		}
		p, err := st.CreatePupil(ctx, school.Pupil{SchoolID: sch.ID, GivenName: fmt.Sprintf("Pupil%d", i), FamilyName: "Bench",
			ClassIDs: []string{class.ID}, GuardianIDs: []string{g.ID}, Status: school.PupilActive})
		if err != nil {
			return nil, err
		}
		if _, err := st.PutEnrolment(ctx, school.Enrolment{PupilID: p.ID, State: school.EnrolmentEnrolled, Rule: school.ConsentAny}); err != nil {
			return nil, err
		}
		for _, platform := range []string{pf.ID, samlPF.ID} {
			if _, err := st.SetConsent(ctx, school.Consent{PupilID: p.ID, GuardianID: g.ID, PlatformID: platform, Decision: school.DecisionGranted}); err != nil {
				return nil, err
			}
		}
		handle, err := st.UserHandle(ctx, school.PupilOwner(p.ID))
		if err != nil {
			return nil, err
		}
		cred := webauthntest.NewCredential()
		if _, err := st.AddCredential(ctx, school.Credential{ID: cred.ID, Owner: school.PupilOwner(p.ID), SchoolID: sch.ID,
			PublicKey: cred.Key.AttestationData(), AttestationFormat: "none", Label: "bench"}); err != nil {
			return nil, err
		}
		f.Pupils = append(f.Pupils, FixturePupil{GivenName: p.GivenName, Handle: handle, Credential: cred})
	}
	return f, nil
}

// WriteFixture saves f (mode 0600: it holds private keys and a secret).
func WriteFixture(path string, f *Fixture) error {
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// ReadFixture loads a fixture written by WriteFixture.
func ReadFixture(path string) (*Fixture, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bench fixture: %w (run `elevid bench prepare` first)", err)
	}
	var f Fixture
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("bench fixture: %w", err)
	}
	if len(f.Pupils) == 0 {
		return nil, errors.New("bench fixture: no pupils")
	}
	return &f, nil
}

// BenchLogin runs `elevid bench login`: concurrency virtual pupils run
// complete flows against baseURL for duration, using the fixture named by
// $ELEVID_BENCH_FIXTURE (or ./elevid-bench.json), and the figures are
// printed to out.
func BenchLogin(ctx context.Context, baseURL string, concurrency int, duration time.Duration, out io.Writer) error {
	path := os.Getenv(FixtureEnv)
	if path == "" {
		path = DefaultFixture
	}
	f, err := ReadFixture(path)
	if err != nil {
		return err
	}
	res, err := Run(ctx, Config{BaseURL: baseURL, Fixture: f, Concurrency: concurrency, Duration: duration})
	if err != nil {
		return err
	}
	res.Print(out)
	return nil
}

// Config is one bench run.
type Config struct {
	// BaseURL is the server's base URL; URLs, when set, are several
	// nodes of one service (one database) instead: every request of a
	// flow goes to the next node in turn, so one flow crosses nodes.
	// The nodes must share scheme and host name (they differ by port),
	// because the cookie jar scopes cookies by host, not port: that is
	// what lets the session cookie set by one node reach the next.
	BaseURL     string
	URLs        []string
	Fixture     *Fixture
	Concurrency int
	Duration    time.Duration
	// Counter, when set, is read before and after the run to report
	// database transactions per flow (in-process servers only).
	Counter *sqlstore.Counter
	// MetricsURL is the running server's /metrics (on its separate
	// metrics listener, server.metrics_listen), read for the database
	// counters when Counter is nil; none when empty. MetricsToken is its
	// bearer token, if it has one.
	MetricsURL, MetricsToken string
	// MetricsURLs are the metrics of several nodes (see URLs), summed;
	// the database work is known only when every one is reachable.
	MetricsURLs []string
}

// Result is the outcome of a run.
type Result struct {
	Flows, Errors int
	Elapsed       time.Duration
	P50, P95, P99 time.Duration
	FirstError    string
	// Transactions, single statements and statements inside
	// transactions per flow (0 when the server's counts are unknown).
	TxPerFlow, StmtPerFlow, InTxPerFlow float64
	// ClientCPUPerFlow is the CPU time this process (the load generator,
	// and an in-process server) spent per flow.
	ClientCPUPerFlow time.Duration
	// Nodes is the number of HTTP requests each node answered, in the
	// order of Config.URLs (one entry for a single BaseURL).
	Nodes []NodeRequests
}

// NodeRequests is how many HTTP requests of a run went to one node.
type NodeRequests struct {
	URL      string
	Requests int64
}

// nodes hands out the server's nodes in turn, one per HTTP request, and
// counts the requests each one got. It is safe for concurrent use.
type nodes struct {
	bases  []string
	host   string
	next   atomic.Uint64
	counts []atomic.Int64
}

// newNodes checks the base URLs: absolute http(s) URLs with one scheme
// and one host name between them (ports may differ).
func newNodes(urls []string) (*nodes, error) {
	if len(urls) == 0 {
		return nil, errors.New("bench: no server URL")
	}
	n := &nodes{counts: make([]atomic.Int64, len(urls))}
	scheme := ""
	for i, raw := range urls {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return nil, fmt.Errorf("bench: server URL %q: want http(s)://host[:port]", raw)
		}
		if i == 0 {
			scheme, n.host = u.Scheme, u.Hostname()
		} else if u.Scheme != scheme || u.Hostname() != n.host {
			return nil, fmt.Errorf("bench: server URL %q: every node must have the scheme and host name of %q (use different ports): cookies are scoped by host, so a flow can cross nodes only on one host name", raw, urls[0])
		}
		n.bases = append(n.bases, u.Scheme+"://"+u.Host)
	}
	return n, nil
}

// url returns where the next request for p goes: p is a path, or an
// absolute URL, which is sent to the next node when it is on the
// service's host and left alone otherwise.
func (n *nodes) url(p string) string {
	if !strings.HasPrefix(p, "/") {
		u, err := url.Parse(p)
		if err != nil || u.Hostname() != n.host {
			return p
		}
		p = u.RequestURI()
	}
	i := int((n.next.Add(1) - 1) % uint64(len(n.bases)))
	n.counts[i].Add(1)
	return n.bases[i] + p
}

// split returns the requests per node so far.
func (n *nodes) split() []NodeRequests {
	out := make([]NodeRequests, len(n.bases))
	for i, b := range n.bases {
		out[i] = NodeRequests{URL: b, Requests: n.counts[i].Load()}
	}
	return out
}

// Print writes r in a readable form.
func (r Result) Print(w io.Writer) {
	fmt.Fprintf(w, "flows %d in %.1fs: %.0f flows/s, errors %d\n", r.Flows, r.Elapsed.Seconds(), float64(r.Flows)/r.Elapsed.Seconds(), r.Errors)
	fmt.Fprintf(w, "latency p50 %.1fms p95 %.1fms p99 %.1fms\n", ms(r.P50), ms(r.P95), ms(r.P99))
	if r.TxPerFlow > 0 || r.StmtPerFlow > 0 {
		fmt.Fprintf(w, "database: %.2f transactions (%.2f statements in them) and %.2f single statements per flow\n", r.TxPerFlow, r.InTxPerFlow, r.StmtPerFlow)
	} else if r.Flows > 0 {
		fmt.Fprintln(w, "database: not known (the server's metrics were not reachable: see --metrics-url)")
	}
	if r.ClientCPUPerFlow > 0 {
		fmt.Fprintf(w, "CPU of this process: %.2f ms per flow\n", ms(r.ClientCPUPerFlow))
	}
	if len(r.Nodes) > 1 {
		var all int64
		for _, n := range r.Nodes {
			all += n.Requests
		}
		for _, n := range r.Nodes {
			fmt.Fprintf(w, "node %s: %d requests (%.1f%%)\n", n.URL, n.Requests, 100*float64(n.Requests)/float64(max(all, 1)))
		}
	}
	if r.FirstError != "" {
		fmt.Fprintf(w, "first error: %s\n", r.FirstError)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// Run runs the load.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Concurrency <= 0 || cfg.Duration <= 0 || cfg.Fixture == nil {
		return Result{}, errors.New("bench: concurrency, duration and fixture are required")
	}
	urls := cfg.URLs
	if len(urls) == 0 {
		urls = []string{cfg.BaseURL}
	}
	nodes, err := newNodes(urls)
	if err != nil {
		return Result{}, err
	}
	metrics := cfg.MetricsURLs
	if len(metrics) == 0 && cfg.MetricsURL != "" {
		metrics = []string{cfg.MetricsURL}
	}
	transport := newTransport(cfg.Concurrency)
	var (
		mu         sync.Mutex
		lat        []time.Duration
		errs       atomic.Int64
		firstError atomic.Value
		next       atomic.Int64
	)
	// The server's database work comes from the counter of an in-process
	// server, or else from the counters a running server exports on
	// /metrics (when reachable).
	work := func() (dbWork, bool) {
		if cfg.Counter != nil {
			return dbWork{cfg.Counter.Transactions.Load(), cfg.Counter.Statements.Load(), cfg.Counter.InTx.Load()}, true
		}
		return scrapeAll(ctx, metrics, cfg.MetricsToken)
	}
	work0, haveWork := work()
	cpu0 := processCPU()
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for time.Now().Before(deadline) && ctx.Err() == nil {
				p := cfg.Fixture.Pupils[int(next.Add(1))%len(cfg.Fixture.Pupils)]
				t0 := time.Now()
				if err := flow(ctx, nodes, cfg.Fixture, p, transport); err != nil {
					errs.Add(1)
					firstError.CompareAndSwap(nil, err.Error())
					continue
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	r := Result{Flows: len(lat), Errors: int(errs.Load()), Elapsed: time.Since(start), Nodes: nodes.split()}
	if s, ok := firstError.Load().(string); ok {
		r.FirstError = s
	}
	slices.Sort(lat)
	if n := len(lat); n > 0 {
		r.P50, r.P95, r.P99 = lat[n*50/100], lat[min(n-1, n*95/100)], lat[min(n-1, n*99/100)]
		all := float64(n + r.Errors)
		if work1, ok := work(); ok && haveWork {
			r.TxPerFlow = float64(work1.tx-work0.tx) / all
			r.StmtPerFlow = float64(work1.single-work0.single) / all
			r.InTxPerFlow = float64(work1.inTx-work0.inTx) / all
		}
		r.ClientCPUPerFlow = (processCPU() - cpu0) / time.Duration(n+r.Errors)
	}
	return r, nil
}

// flow runs one complete login of pupil p with a fresh browser.
func flow(ctx context.Context, n *nodes, f *Fixture, p FixturePupil, tr http.RoundTripper) error {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Transport: tr, Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	verifier := oauth2.GenerateVerifier()
	state := school.NewID()
	q := url.Values{"client_id": {f.ClientID}, "redirect_uri": {f.RedirectURI}, "response_type": {"code"}, "scope": {"openid profile groups"},
		"state": {state}, "nonce": {school.NewID()}, "code_challenge": {oauth2.S256ChallengeFromVerifier(verifier)}, "code_challenge_method": {"S256"}}
	cb, err := browse(ctx, c, n, f, p, "/oidc/authorize?"+q.Encode())
	if err != nil {
		return err
	}
	lu, _ := url.Parse(cb)
	if e := lu.Query().Get("error"); e != "" {
		return fmt.Errorf("authorize: %s", e)
	}
	if lu.Query().Get("state") != state {
		return errors.New("authorize: state mismatch")
	}
	code := lu.Query().Get("code")
	if code == "" {
		return errors.New("no code")
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {f.RedirectURI}, "code_verifier": {verifier}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.url("/oidc/token"), strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(f.ClientID), url.QueryEscape(f.ClientSecret))
	var tok struct {
		AccessToken string `json:"access_token"`
		IDToken     string `json:"id_token"`
	}
	if err := doJSON(c, req, &tok); err != nil {
		return fmt.Errorf("token: %w", err)
	}
	if tok.AccessToken == "" || tok.IDToken == "" {
		return errors.New("token: no tokens")
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, n.url("/oidc/userinfo"), nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	var ui struct {
		Sub string `json:"sub"`
	}
	if err := doJSON(c, req, &ui); err != nil {
		return fmt.Errorf("userinfo: %w", err)
	}
	if ui.Sub == "" {
		return errors.New("userinfo: no sub")
	}
	return nil
}
