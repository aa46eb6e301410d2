package saml

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
	"github.com/elevid/elevid/web"
)

// PupilSession is what the SAML IdP needs of a pupil's login session.
type PupilSession struct {
	ID       string // the login session's id (for single logout)
	PupilID  string
	AuthTime time.Time // when the pupil authenticated
	// UserVerified says the passkey verified the pupil (PIN or
	// biometric): the login is multi-factor (REFEDS MFA).
	UserVerified bool
}

// SessionSource tells the SAML IdP who is logged in. The passkey login
// provides it through LoginSessions, an adapter over login.Login.Current
// and login.LoginURL.
type SessionSource interface {
	// Current returns the request's valid login session, if any.
	Current(r *http.Request) (PupilSession, bool)
	// LoginURL is where to send the browser to log in, coming back to the
	// same-site path returnTo afterwards.
	LoginURL(returnTo string) string
}

// ReleaseLogger records what a platform received about a pupil (the
// release log, release.Log). Record writes through q, the transaction
// the assertion's other records are written in, and must have no effect
// outside it (the transaction may run again).
type ReleaseLogger interface {
	Record(ctx context.Context, q school.Queries, pupilID string, platform school.Platform, attrs []string) error
}

// Options are the dependencies and settings of the SAML IdP.
type Options struct {
	// BaseURL is the public base URL (the issuer), e.g. https://elevid.example.dk;
	// the entity id is BaseURL+"/saml/metadata".
	BaseURL  string
	Store    school.Store
	Site     *web.Site
	Sessions SessionSource
	// Access ends login sessions on single logout (and with them every
	// platform's, through logout notices) and wakes the SOAP logout
	// queue worker (RunLogoutQueue). cmd/elevid passes the one service;
	// nil means a service of the IdP's own (tests).
	Access *access.Service
	// HTTPClient sends SOAP LogoutRequests; a client with a 5-second
	// timeout when nil.
	HTTPClient *http.Client
	Keys       Keys
	// Sealer seals an AuthnRequest waiting for the pupil's login into the
	// resume URL (its own purpose: no other sealed value opens as one).
	Sealer         *school.Sealer
	PairwiseSecret []byte
	Releases       ReleaseLogger
	Logger         *slog.Logger
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// FlowTTL bounds the time between an AuthnRequest and its answer
	// (10 minutes by default).
	FlowTTL time.Duration
	// AssertionTTL is an assertion's validity (5 minutes by default).
	AssertionTTL time.Duration
	// SessionTTL is how long an SP session is remembered for single
	// logout (12 hours by default).
	SessionTTL time.Duration
	// MaxMessageBytes bounds an incoming SAML message, encoded and decoded
	// (64 KiB by default).
	MaxMessageBytes int
}

// IdP is ElevID's SAML 2.0 identity provider: metadata, single sign-on
// (HTTP-Redirect and HTTP-POST, SP- and IdP-initiated) and single logout.
//
// A request that arrives cross-site (an SP's auto-posted form) carries no
// SameSite=Lax session cookie, so SSO never reads the session on that
// request: it verifies the AuthnRequest, seals it (expiring) into the
// URL of /saml/resume and redirects there (303, a same-site GET), which
// reads the session. The request id is recorded when the request is
// answered, so each AuthnRequest is answered at most once.
type IdP struct {
	opt         Options
	log         *slog.Logger
	sps         samlSPCache
	entityID    string
	metadataURL url.URL
	ssoURL      url.URL
	sloURL      url.URL
	formTmpl    *template.Template
	wake        <-chan struct{} // logout notices were queued
}

// New returns the SAML IdP; it checks that every dependency is there.
func New(opt Options) (*IdP, error) {
	var missing []string
	for name, ok := range map[string]bool{
		"BaseURL": opt.BaseURL != "", "Store": opt.Store != nil, "Site": opt.Site != nil, "Sessions": opt.Sessions != nil,
		"Keys": opt.Keys != nil, "Sealer": opt.Sealer != nil, "PairwiseSecret": len(opt.PairwiseSecret) >= 32, "Releases": opt.Releases != nil,
	} {
		if !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("saml: missing options: %s", strings.Join(missing, ", "))
	}
	base, err := url.Parse(strings.TrimRight(opt.BaseURL, "/"))
	if err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "" {
		return nil, fmt.Errorf("saml: base URL %q is not an absolute http(s) URL", opt.BaseURL)
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.FlowTTL == 0 {
		opt.FlowTTL = 10 * time.Minute
	}
	if opt.AssertionTTL == 0 {
		opt.AssertionTTL = 5 * time.Minute
	}
	if opt.SessionTTL == 0 {
		opt.SessionTTL = 12 * time.Hour
	}
	if opt.MaxMessageBytes == 0 {
		opt.MaxMessageBytes = 64 << 10
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 5 * time.Second}
	}
	if opt.Access == nil {
		opt.Access = access.New(access.Options{Now: opt.Now, Logger: opt.Logger})
	}
	s := &IdP{opt: opt, log: opt.Logger, wake: opt.Access.Subscribe()}
	at := func(p string) url.URL { u := *base; u.Path = base.Path + p; return u }
	s.metadataURL, s.ssoURL, s.sloURL = at("/saml/metadata"), at("/saml/sso"), at("/saml/slo")
	s.entityID = s.metadataURL.String()
	s.formTmpl = template.Must(template.New("saml-form").Parse(standaloneForm))
	return s, nil
}

// EntityID is the IdP's entity id (its metadata URL).
func (s *IdP) EntityID() string { return s.entityID }

// Mount registers the SAML routes. POST /saml/sso and POST /saml/slo
// receive cross-site form posts from service providers and must bypass
// CSRF protection; POST /saml/logout is a same-site form and must not.
func (s *IdP) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /saml/metadata", s.serveMetadata)
	mux.HandleFunc("GET /saml/sso", s.serveSSO)
	mux.HandleFunc("POST /saml/sso", s.serveSSO)
	mux.HandleFunc("GET /saml/resume", s.serveResume)
	mux.HandleFunc("GET /saml/refused", s.serveRefused)
	mux.HandleFunc("GET /saml/idp-initiated", s.serveIdPInitiated)
	mux.HandleFunc("GET /saml/slo", s.serveSLO)
	mux.HandleFunc("POST /saml/slo", s.serveSLO)
	mux.HandleFunc("POST /saml/logout", s.serveLogout)
}

func (s *IdP) now() time.Time {
	if s.opt.Now != nil {
		return s.opt.Now()
	}
	return time.Now()
}

// idp returns a crewjam IdentityProvider for one request, with the current
// signing key and ElevID's clock.
func (s *IdP) idp(ctx context.Context) (*saml.IdentityProvider, error) {
	pair, err := s.opt.Keys.Signing(ctx)
	if err != nil {
		return nil, err
	}
	published, err := s.opt.Keys.Published(ctx)
	if err != nil {
		return nil, err
	}
	var extra = published[1:]
	clock := dsig.NewRealClock()
	if s.opt.Now != nil {
		clock = dsig.NewFakeClockAt(s.now())
	}
	valid := 48 * time.Hour
	return &saml.IdentityProvider{
		Key:                     pair.Key,
		Certificate:             pair.Cert,
		ExtraCertificates:       extra,
		MetadataURL:             s.metadataURL,
		SSOURL:                  s.ssoURL,
		LogoutURL:               s.sloURL,
		LogoutBindings:          []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding},
		ServiceProviderProvider: spProvider{s},
		SignatureMethod:         dsig.RSASHA256SignatureMethod,
		NameIDFormats:           []saml.NameIDFormat{saml.PersistentNameIDFormat, saml.TransientNameIDFormat},
		Clock:                   clock,
		ValidDuration:           &valid,
		RejectSHA1Signatures:    true,
		ReplayCache:             samlReplayCache{s},
		ResponseFormTemplate:    s.formTmpl,
		Logger:                  slogLogger{s.log},
	}, nil
}

type spProvider struct{ s *IdP }

// GetServiceProvider implements saml.ServiceProviderProvider.
func (p spProvider) GetServiceProvider(r *http.Request, id string) (*saml.EntityDescriptor, error) {
	sp, err := p.s.sps.lookup(r.Context(), p.s.opt.Store, id)
	if err != nil {
		return nil, err
	}
	return sp.Metadata, nil
}

// samlReplayCache keeps crewjam's replay records (LogoutRequest ids) in
// the store.
type samlReplayCache struct{ s *IdP }

// Consume implements saml.AssertionReplayCache.
func (c samlReplayCache) Consume(id string, expiresAt time.Time) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.s.opt.Store.UseSAMLMessageID(ctx, "crewjam", id, expiresAt)
	if errors.Is(err, school.ErrUsed) {
		return saml.ErrAssertionReplayed
	}
	return err
}

// slogLogger adapts slog to crewjam's logger.
type slogLogger struct{ l *slog.Logger }

func (l slogLogger) Printf(format string, v ...interface{}) {
	l.l.Info("saml: " + fmt.Sprintf(format, v...))
}
func (l slogLogger) Print(v ...interface{})   { l.l.Info("saml: " + fmt.Sprint(v...)) }
func (l slogLogger) Println(v ...interface{}) { l.l.Info("saml: " + fmt.Sprint(v...)) }
func (l slogLogger) Fatal(v ...interface{})   { l.l.Error("saml: " + fmt.Sprint(v...)) }
func (l slogLogger) Fatalf(format string, v ...interface{}) {
	l.l.Error("saml: " + fmt.Sprintf(format, v...))
}
func (l slogLogger) Fatalln(v ...interface{}) { l.l.Error("saml: " + fmt.Sprint(v...)) }
func (l slogLogger) Panic(v ...interface{})   { l.l.Error("saml: " + fmt.Sprint(v...)) }
func (l slogLogger) Panicf(format string, v ...interface{}) {
	l.l.Error("saml: " + fmt.Sprintf(format, v...))
}
func (l slogLogger) Panicln(v ...interface{}) { l.l.Error("saml: " + fmt.Sprint(v...)) }

// serveMetadata publishes the IdP metadata: signing certificates (both
// during a rotation), SSO and SLO endpoints, NameID formats and a
// shibmd:Scope for every school domain. It is signed with the current key.
func (s *IdP) serveMetadata(w http.ResponseWriter, r *http.Request) {
	idp, err := s.idp(r.Context())
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	schools, err := s.opt.Store.ListSchools(r.Context())
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	seen := map[string]bool{}
	for _, sc := range schools {
		if sc.Domain != "" && !seen[sc.Domain] {
			seen[sc.Domain] = true
			idp.MetadataScopes = append(idp.MetadataScopes, saml.ShibbolethScope{Value: sc.Domain})
		}
	}
	idp.SignMetadata = true
	idp.OnError = func(w http.ResponseWriter, r *http.Request, _ int, err error) { s.opt.Site.ServerError(w, r, err) }
	w.Header().Set("Cache-Control", "public, max-age=3600")
	idp.ServeMetadata(w, r)
}

// samlPostData is the data of the saml-post page: a form that posts one
// SAML message to a URL from SP metadata.
type samlPostData struct {
	Action     string
	Field      string // SAMLResponse or SAMLRequest
	Value      string // base64
	RelayState string
}

// postForm renders the auto-posting form (web/static/auto-post.js submits
// it; a noscript button does without JavaScript).
func (s *IdP) postForm(w http.ResponseWriter, r *http.Request, action, field string, xmlBytes []byte, relay string) {
	noStore(w)
	s.opt.Site.Render(w, r, http.StatusOK, "saml-post", samlPostData{
		Action: action, Field: field, Value: base64.StdEncoding.EncodeToString(xmlBytes), RelayState: relay,
	})
}

// standaloneForm is used by crewjam for LogoutResponses posted to SPs; it
// follows the same CSP rules as the site (no inline script).
const standaloneForm = `<!doctype html><html><head><meta charset="utf-8"><title>ElevID</title>` +
	`<script src="/static/auto-post.js" defer></script></head><body>` +
	`<form method="post" action="{{.URL}}" id="auto-post-form">` +
	`<input type="hidden" name="SAMLResponse" value="{{.SAMLResponse}}">` +
	`{{if .RelayState}}<input type="hidden" name="RelayState" value="{{.RelayState}}">{{end}}` +
	`<noscript><button type="submit">Fortsæt / Continue</button></noscript>` +
	`</form></body></html>`

// checkMessageXML refuses a SAML protocol message that has a comment, a
// processing instruction or a DTD anywhere, or more than one root element:
// none has a use in a SAML message, and comments inside signed text
// (Issuer, NameID) are a known way to make parsers disagree.
func checkMessageXML(b []byte) error {
	d := xml.NewDecoder(bytes.NewReader(b))
	depth, roots := 0, 0
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.Comment:
			return errors.New("message contains an XML comment")
		case xml.Directive:
			return errors.New("message contains a DTD or directive")
		case xml.ProcInst:
			if t.Target != "xml" || depth > 0 || roots > 0 {
				return errors.New("message contains a processing instruction")
			}
		case xml.StartElement:
			if depth == 0 {
				roots++
				if roots > 1 {
					return errors.New("message has more than one root element")
				}
			}
			depth++
		case xml.EndElement:
			depth--
		}
	}
	if roots != 1 {
		return errors.New("message has no root element")
	}
	return nil
}
