package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/crewjam/saml"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// samlSSOFlow is an AuthnRequest (or an IdP-initiated login) waiting for
// the pupil's session. An SP-initiated one travels sealed (sealFlow) in
// the resume URL; nothing is stored for it until it is answered. Its
// JSON names are short to keep that URL short.
type samlSSOFlow struct {
	PlatformID   string    `json:"p"`
	RequestID    string    `json:"i,omitempty"`
	ACSURL       string    `json:"a"`
	RelayState   string    `json:"r,omitempty"`
	NameIDFormat string    `json:"n,omitempty"` // requested in NameIDPolicy
	ForceAuthn   bool      `json:"f,omitempty"`
	IsPassive    bool      `json:"q,omitempty"`
	IssueInstant time.Time `json:"t,omitzero"`
	// AuthnContext and Comparison are the RequestedAuthnContext's class
	// refs and comparison; DeclRef says it asked for an
	// AuthnContextDeclRef, which ElevID never meets.
	AuthnContext []string `json:"x,omitempty"`
	Comparison   string   `json:"y,omitempty"`
	DeclRef      bool     `json:"z,omitempty"`
	// CreatedAt is when the request arrived (ForceAuthn wants a login
	// after it); ExpiresAt ends the sealed flow.
	CreatedAt time.Time `json:"c,omitzero"`
	ExpiresAt time.Time `json:"e,omitzero"`
}

// authnContext decides the AuthnContextClassRef to assert for a login
// that reached reached; false when the request cannot be met.
func (fl samlSSOFlow) authnContext(reached string) (string, bool) {
	if fl.DeclRef {
		return "", false
	}
	return login.MeetAuthnContext(fl.AuthnContext, fl.Comparison, reached)
}

// limitMessage bounds the size of an incoming SAML message; it reports
// false (after answering) when the request is too large.
func (s *IdP) limitMessage(w http.ResponseWriter, r *http.Request) bool {
	max := s.opt.MaxMessageBytes
	if len(r.URL.RawQuery) > 2*max || r.ContentLength > int64(2*max) {
		s.reject(w, r, http.StatusRequestEntityTooLarge, "saml.error.too_large", "", errors.New("message too large"))
		return false
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, int64(2*max))
		if err := r.ParseForm(); err != nil {
			s.reject(w, r, http.StatusRequestEntityTooLarge, "saml.error.too_large", "", err)
			return false
		}
	}
	return true
}

// reject logs a refused message with the SP's entity id (as claimed) and
// shows an error page. It never answers to a URL from the message.
func (s *IdP) reject(w http.ResponseWriter, r *http.Request, status int, key, sp string, err error) {
	s.log.Warn("saml: request refused", "reason", key, "sp", sp, "path", r.URL.Path, "remote", web.ClientIP(r), "err", err)
	s.opt.Site.Error(w, r, status, key)
}

// acceptMessage applies the size limit and the XML shape checks (no
// comments, DTDs or second roots) to an inflated incoming message. It
// answers the request and returns false when the message is refused.
func (s *IdP) acceptMessage(w http.ResponseWriter, r *http.Request, buf []byte) bool {
	if len(buf) > s.opt.MaxMessageBytes {
		s.reject(w, r, http.StatusRequestEntityTooLarge, "saml.error.too_large", "", errors.New("inflated message too large"))
		return false
	}
	if err := checkMessageXML(buf); err != nil {
		s.reject(w, r, http.StatusBadRequest, "saml.error.malformed", "", err)
		return false
	}
	return true
}

// serveSSO receives an AuthnRequest (GET: HTTP-Redirect, POST:
// HTTP-POST), verifies it, seals it into the flow parameter of
// /saml/resume and redirects there. It writes nothing: the request id's
// single use is recorded when the request is answered (useRequestID).
func (s *IdP) serveSSO(w http.ResponseWriter, r *http.Request) {
	if !s.limitMessage(w, r) {
		return
	}
	ctx := r.Context()
	idp, err := s.idp(ctx)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	req, err := saml.NewIdpAuthnRequest(idp, r)
	if err != nil {
		s.reject(w, r, http.StatusBadRequest, "saml.error.malformed", "", err)
		return
	}
	if !s.acceptMessage(w, r, req.RequestBuffer) {
		return
	}
	if len(req.RelayState) > maxRelayState {
		// SAML bindings §3.4.3/§3.5.3: RelayState MUST NOT exceed 80 bytes.
		s.reject(w, r, http.StatusBadRequest, "saml.error.invalid", "", fmt.Errorf("RelayState of %d bytes, more than %d", len(req.RelayState), maxRelayState))
		return
	}
	if err := req.Validate(); err != nil {
		claimed := ""
		if req.Request.Issuer != nil {
			claimed = req.Request.Issuer.Value
		}
		status, key := http.StatusBadRequest, "saml.error.invalid"
		switch {
		case errors.Is(err, saml.ErrUnknownServiceProvider):
			key = "saml.error.unknown_sp"
		case errors.Is(err, saml.ErrUnknownAssertionConsumerService):
			key = "saml.error.unknown_acs"
		case errors.Is(err, saml.ErrMalformedMessage):
			key = "saml.error.malformed"
		}
		s.reject(w, r, status, key, claimed, err)
		return
	}
	issuer := req.ServiceProviderMetadata.EntityID
	if req.ACSEndpoint.Binding != saml.HTTPPostBinding {
		s.reject(w, r, http.StatusBadRequest, "saml.error.unknown_acs", issuer, fmt.Errorf("ACS binding %s is not supported", req.ACSEndpoint.Binding))
		return
	}
	sp, err := s.sps.lookup(ctx, s.opt.Store, issuer)
	if err != nil {
		s.reject(w, r, http.StatusBadRequest, "saml.error.unknown_sp", issuer, err)
		return
	}
	now := s.now()
	fl := samlSSOFlow{
		PlatformID: sp.Platform.ID, RequestID: req.Request.ID, ACSURL: req.ACSEndpoint.Location,
		RelayState: req.RelayState, IssueInstant: req.Request.IssueInstant,
		CreatedAt: now, ExpiresAt: now.Add(s.opt.FlowTTL),
		ForceAuthn: req.Request.ForceAuthn != nil && *req.Request.ForceAuthn,
		IsPassive:  req.Request.IsPassive != nil && *req.Request.IsPassive,
	}
	if end := s.requestIDExpiry(fl.IssueInstant); end.Before(fl.ExpiresAt) {
		fl.ExpiresAt = end // the flow must not outlive its request id's record
	}
	if p := req.Request.NameIDPolicy; p != nil && p.Format != nil {
		fl.NameIDFormat = *p.Format
	}
	if rac := req.Request.RequestedAuthnContext; rac != nil {
		fl.AuthnContext, fl.Comparison = rac.ClassRefs(), rac.Comparison
		// crewjam does not parse AuthnContextDeclRef.
		fl.DeclRef = bytes.Contains(req.RequestBuffer, []byte("AuthnContextDeclRef"))
	}
	token, err := s.sealFlow(fl)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	if len(token) > maxSealedFlow {
		s.reject(w, r, http.StatusBadRequest, "saml.error.invalid", issuer, fmt.Errorf("sealed request of %d bytes, more than %d", len(token), maxSealedFlow))
		return
	}
	s.log.Info("saml: authn request accepted", "sp", issuer, "binding", r.Method, "request_id", req.Request.ID)
	noStore(w)
	http.Redirect(w, r, resumePath(token), http.StatusSeeOther)
}

// maxRelayState is the longest RelayState the SAML bindings allow (80
// bytes), on SP- and IdP-initiated flows alike.
const maxRelayState = 80

func resumePath(token string) string { return "/saml/resume?flow=" + url.QueryEscape(token) }

// sealSSOFlow is the Sealer context of a sealed SSO flow: no other sealed
// value (an OIDC request or code, a stored secret) opens as one, nor a
// sealed flow as any of them.
const sealSSOFlow = "saml-sso-flow"

// maxSealedFlow bounds a sealed flow, so the resume URL stays well inside
// what the login page's return_to takes (login.SafeReturnTo: 16 KiB)
// and what browsers and proxies pass. A request with an ordinary id, ACS
// URL and RelayState seals to about 500 bytes.
const maxSealedFlow = 4 << 10

// sealFlow returns fl sealed (AES-GCM, school.Sealer) for the resume URL.
func (s *IdP) sealFlow(fl samlSSOFlow) (string, error) {
	return s.opt.Sealer.SealJSON(fl, sealSSOFlow)
}

// openFlow returns the flow sealed in token: ErrNotFound when token is
// not one (forged, altered, of another purpose, or sealed under a key no
// longer configured), ErrExpired when past its expiry.
func (s *IdP) openFlow(token string) (samlSSOFlow, error) {
	var fl samlSSOFlow
	if err := s.opt.Sealer.OpenJSON(token, sealSSOFlow, maxSealedFlow, &fl); err != nil || fl.RequestID == "" {
		return fl, fmt.Errorf("saml flow: %w", school.ErrNotFound)
	}
	if !s.now().Before(fl.ExpiresAt) {
		return fl, fmt.Errorf("saml flow: %w", school.ErrExpired)
	}
	return fl, nil
}

// requestIDExpiry is how long an AuthnRequest id's use is remembered:
// past the end of every flow sealed for a request with that
// IssueInstant (a flow's expiry is capped by it), so no flow outlives
// the record that it was answered.
func (s *IdP) requestIDExpiry(issueInstant time.Time) time.Time {
	return issueInstant.Add(saml.MaxClockSkew + s.opt.FlowTTL)
}

// useRequestID records through q that the flow's AuthnRequest is
// answered: ErrUsed when it was answered before (a replayed request, or
// a resume URL used again). Every answer to an SP-initiated request (a
// Response, a refusal, a passive status) calls it before it is issued;
// an IdP-initiated flow has no request id and needs none.
func (s *IdP) useRequestID(ctx context.Context, q school.Queries, sp samlSP, fl samlSSOFlow) error {
	if fl.RequestID == "" {
		return nil
	}
	return q.UseSAMLMessageID(ctx, sp.Platform.ClientID, fl.RequestID, s.requestIDExpiry(fl.IssueInstant))
}

// answerError shows the page for a flow that cannot be answered: the
// replayed page when its request was answered before.
func (s *IdP) answerError(w http.ResponseWriter, r *http.Request, sp samlSP, err error) {
	if errors.Is(err, school.ErrUsed) {
		s.reject(w, r, http.StatusBadRequest, "saml.error.replayed", sp.Platform.ClientID, err)
		return
	}
	s.opt.Site.ServerError(w, r, err)
}

// answerOnce records, on its own, that the flow's request is answered by
// an answer that writes nothing else (a refusal, a status); when it
// cannot, it shows answerError's page and returns false.
func (s *IdP) answerOnce(w http.ResponseWriter, r *http.Request, sp samlSP, fl samlSSOFlow) bool {
	if err := s.useRequestID(r.Context(), s.opt.Store, sp, fl); err != nil {
		s.answerError(w, r, sp, err)
		return false
	}
	return true
}

// storeFlow keeps data (a refusal page, a logout flow) as a flow under
// the hash of a token and returns the token: a new random one, or key
// when given (logout flows are found by the LogoutRequest id their answer
// refers to).
func (s *IdP) storeFlow(ctx context.Context, kind, key string, data any) (string, error) {
	if key == "" {
		key = randomToken()
	}
	b, err := json.Marshal(data)
	if err != nil {
		return "", err
	}
	err = s.opt.Store.CreateSAMLFlow(ctx, school.SAMLFlow{ID: flowID(kind, key), Kind: kind, Data: b, ExpiresAt: s.now().Add(s.opt.FlowTTL)})
	return key, err
}

func flowID(kind, token string) string {
	sum := sha256.Sum256([]byte("saml-flow:" + kind + ":" + token))
	return hex.EncodeToString(sum[:])
}

func randomToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomID() string {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return "_" + hex.EncodeToString(b)
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

// flowError shows the page for a flow that is gone, used or expired.
func (s *IdP) flowError(w http.ResponseWriter, r *http.Request, err error) {
	switch {
	case errors.Is(err, school.ErrNotFound), errors.Is(err, school.ErrUsed), errors.Is(err, school.ErrExpired):
		s.reject(w, r, http.StatusBadRequest, "saml.error.expired", "", err)
	default:
		s.opt.Site.ServerError(w, r, err)
	}
}

// serveResume answers a sealed AuthnRequest once the pupil has a session
// (this same-site GET carries the Lax cookie). Without one it sends the
// browser to log in and back here. A flow that does not open, or has
// expired, gets the expired page; one whose request was answered before
// gets the replayed page.
func (s *IdP) serveResume(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token := r.URL.Query().Get("flow")
	fl, err := s.openFlow(token)
	if err != nil {
		s.flowError(w, r, err)
		return
	}
	sp, err := s.spByID(ctx, fl.PlatformID)
	if err != nil {
		s.flowError(w, r, err)
		return
	}
	// A request no login can meet is refused before asking for one.
	if _, can := fl.authnContext(login.ACRREFEDSMFA); !can {
		if !s.answerOnce(w, r, sp, fl) {
			return
		}
		s.refuse(w, r, sp, fl, samlRefusal{Key: "saml.refused.authn_context", Code: saml.StatusRequester, Sub: samlStatusNoAuthnContext,
			Why: fmt.Sprintf("requested authn context %v (%s) cannot be met", fl.AuthnContext, fl.Comparison)})
		return
	}
	sess, ok := s.opt.Sessions.Current(r)
	if ok && fl.ForceAuthn && sess.AuthTime.Before(fl.CreatedAt) {
		ok = false
	}
	if !ok {
		if fl.IsPassive {
			if !s.answerOnce(w, r, sp, fl) {
				return
			}
			s.sendStatus(w, r, sp, fl, saml.StatusResponder, samlStatusNoPassive)
			return
		}
		noStore(w)
		http.Redirect(w, r, s.opt.Sessions.LoginURL(resumePath(token)), http.StatusSeeOther)
		return
	}
	s.respond(w, r, sp, sess, fl)
}

func (s *IdP) spByID(ctx context.Context, platformID string) (samlSP, error) {
	p, err := s.opt.Store.GetPlatform(ctx, platformID)
	if err != nil {
		return samlSP{}, err
	}
	if p.Protocol != school.ProtocolSAML {
		return samlSP{}, fmt.Errorf("platform %s: %w", p.ID, school.ErrNotFound)
	}
	return s.sps.parse(p)
}

// serveIdPInitiated logs the pupil in to a platform from ElevID's side:
// GET /saml/idp-initiated?sp=ENTITYID[&RelayState=…]. The response goes
// to the SP's default HTTP-POST assertion consumer service.
func (s *IdP) serveIdPInitiated(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	entityID := r.URL.Query().Get("sp")
	relay := r.URL.Query().Get("RelayState")
	if len(relay) > 80 {
		s.reject(w, r, http.StatusBadRequest, "saml.error.invalid", entityID, errors.New("RelayState longer than 80 bytes"))
		return
	}
	idp, err := s.idp(ctx)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	req, err := idp.NewIdpInitiatedRequest(r, entityID, relay)
	if err != nil {
		status, key := http.StatusBadRequest, "saml.error.unknown_acs"
		if errors.Is(err, saml.ErrUnknownServiceProvider) {
			status, key = http.StatusNotFound, "saml.error.unknown_sp"
		}
		s.reject(w, r, status, key, entityID, err)
		return
	}
	if req.ACSEndpoint.Binding != saml.HTTPPostBinding {
		s.reject(w, r, http.StatusBadRequest, "saml.error.unknown_acs", entityID, fmt.Errorf("default ACS binding %s", req.ACSEndpoint.Binding))
		return
	}
	sess, ok := s.opt.Sessions.Current(r)
	if !ok {
		noStore(w)
		http.Redirect(w, r, s.opt.Sessions.LoginURL(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	sp, err := s.sps.lookup(ctx, s.opt.Store, entityID)
	if err != nil {
		s.reject(w, r, http.StatusNotFound, "saml.error.unknown_sp", entityID, err)
		return
	}
	s.respond(w, r, sp, sess, samlSSOFlow{PlatformID: sp.Platform.ID, ACSURL: req.ACSEndpoint.Location, RelayState: relay})
}

// respond issues the assertion for a pupil's session, if the pupil is
// active and a consent covers the platform, records the request id's
// use, the release and the SP session in one transaction, and posts the
// response to the ACS. A refusal uses the request id too.
func (s *IdP) respond(w http.ResponseWriter, r *http.Request, sp samlSP, sess PupilSession, fl samlSSOFlow) {
	ctx := r.Context()
	entity := sp.Platform.ClientID
	profile, cs, err := s.opt.Store.ReleaseInputs(school.Brief(ctx), sess.PupilID, sp.Platform.ID) // one pupil's rows
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	pupil := profile.Pupil
	var refusal *samlRefusal
	var rel release.Release
	if pupil.Status != school.PupilActive {
		refusal = refusalFor(fmt.Errorf("pupil %s is %s: %w", pupil.ID, pupil.Status, release.ErrQuarantined))
	} else {
		rel, err = release.Compute(release.Input{Profile: profile, Platform: sp.Platform, State: cs, PairwiseSecret: s.opt.PairwiseSecret, Sector: entity})
		if release.Refused(err) {
			refusal = refusalFor(fmt.Errorf("pupil %s, platform %s: %w", pupil.ID, sp.Platform.ID, err))
		} else if err != nil {
			s.opt.Site.ServerError(w, r, err)
			return
		}
	}
	var classRef string
	if refusal == nil {
		var ok bool
		classRef, ok = fl.authnContext(login.ACRFor(sess.UserVerified))
		if !ok {
			refusal = &samlRefusal{Key: "saml.refused.authn_context", Code: saml.StatusRequester, Sub: samlStatusNoAuthnContext,
				Why: fmt.Sprintf("requested authn context %v (%s) not met by %s", fl.AuthnContext, fl.Comparison, login.ACRFor(sess.UserVerified))}
		}
	}
	if refusal != nil {
		if !s.answerOnce(w, r, sp, fl) {
			return
		}
		switch {
		case fl.RequestID == "":
			// IdP-initiated: no platform is waiting for an answer.
			s.reject(w, r, http.StatusForbidden, refusal.Key, entity, errors.New(refusal.Why))
		case fl.IsPassive:
			// A passive request must not stop at a page: the status goes
			// back at once.
			s.log.Info("saml: passive request refused", "sp", entity, "why", refusal.Why)
			s.sendStatus(w, r, sp, fl, refusal.Code, refusal.Sub)
		default:
			s.refuse(w, r, sp, fl, *refusal)
		}
		return
	}
	pairwise := rel.Pairwise
	format := sp.Settings.NameIDFormat
	switch fl.NameIDFormat {
	case string(saml.TransientNameIDFormat):
		format = "transient"
	case string(saml.PersistentNameIDFormat):
		format = "persistent"
	}
	nameID := saml.NameID{Format: string(saml.PersistentNameIDFormat), NameQualifier: s.entityID, SPNameQualifier: entity, Value: pairwise}
	if format == "transient" {
		nameID = saml.NameID{Format: string(saml.TransientNameIDFormat), NameQualifier: s.entityID, SPNameQualifier: entity, Value: randomID()}
	}
	attrs, names := Attributes(s.entityID, sp.Platform, rel)
	pair, err := s.opt.Keys.Signing(ctx)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	now := s.now()
	sessionIndex := randomID()
	resp, err := s.buildResponse(pair, responseInput{
		Now: now, SP: sp, ACS: fl.ACSURL, InResponseTo: fl.RequestID, NameID: nameID,
		SessionIndex: sessionIndex, AuthTime: sess.AuthTime, AuthnContext: classRef, Attributes: attrs,
	})
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	// The request's single use, the SP session (for single logout) and
	// the release log entry are one commit: no assertion leaves without
	// them, and a request answered before leaves none of them behind.
	err = s.opt.Store.InTx(school.Brief(ctx), func(q school.Queries) error {
		if err := s.useRequestID(ctx, q, sp, fl); err != nil {
			return err
		}
		if _, err := q.AddSAMLParticipant(ctx, school.SAMLParticipant{
			SessionID: sess.ID, PupilID: pupil.ID, PlatformID: sp.Platform.ID, NameID: nameID.Value,
			NameIDFormat: nameID.Format, SessionIndex: sessionIndex, ExpiresAt: now.Add(s.opt.SessionTTL),
		}); err != nil {
			return err
		}
		return s.opt.Releases.Record(ctx, q, pupil.ID, sp.Platform, append([]string{"NameID:" + format}, names...))
	})
	if err != nil {
		s.answerError(w, r, sp, err)
		return
	}
	s.log.Info("saml: assertion issued", "sp", entity, "platform", sp.Platform.ID, "pupil", pupil.ID, "attributes", len(names),
		"in_response_to", fl.RequestID, "authn_context", classRef)
	s.postForm(w, r, fl.ACSURL, "SAMLResponse", resp, fl.RelayState)
}

// sendStatus posts an error Response (no assertion) to the ACS of a
// verified request.
func (s *IdP) sendStatus(w http.ResponseWriter, r *http.Request, sp samlSP, fl samlSSOFlow, code, sub string) {
	pair, err := s.opt.Keys.Signing(r.Context())
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	resp, err := s.buildStatusResponse(pair, s.now(), fl.ACSURL, fl.RequestID, code, sub)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	s.log.Info("saml: status response", "sp", sp.Platform.ClientID, "status", code, "sub", sub)
	s.postForm(w, r, fl.ACSURL, "SAMLResponse", resp, fl.RelayState)
}
