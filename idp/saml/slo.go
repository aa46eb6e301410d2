package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// samlLogoutTarget is one SP session to end in an IdP-initiated logout.
type samlLogoutTarget struct {
	PlatformID   string `json:"platform_id"`
	NameID       string `json:"name_id"`
	NameIDFormat string `json:"name_id_format"`
	SessionIndex string `json:"session_index"`
}

// samlLogoutFlow walks the browser through each SP's single logout
// service; it is stored under the id of the LogoutRequest in flight, which
// the SP's LogoutResponse refers to (InResponseTo).
type samlLogoutFlow struct {
	Remaining []samlLogoutTarget `json:"remaining"`
	Current   string             `json:"current"` // platform name
	Done      []string           `json:"done"`
	Failed    []string           `json:"failed"`
}

// samlLogoutData is the data of the saml-logout page.
type samlLogoutData struct {
	Done   []string
	Failed []string
}

// serveLogout is IdP-initiated single logout (a same-site form on the
// pupil's page): it ends the login session through the access service,
// which queues a logout notice for every platform of the session (SAML
// SPs with a SOAP single logout service get it over the back channel),
// and then walks the browser through the SPs that have only a
// front-channel single logout service, one after another.
func (s *IdP) serveLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, ok := s.opt.Sessions.Current(r)
	if !ok {
		s.opt.Site.Render(w, r, http.StatusOK, "saml-logout", samlLogoutData{})
		return
	}
	parts, err := s.opt.Store.SAMLParticipants(ctx, sess.ID)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	ref := school.SAMLSessionRef(sess.ID, sess.PupilID)
	if ref == "" {
		s.opt.Site.ServerError(w, r, fmt.Errorf("saml: session id %q names no login session", sess.ID))
		return
	}
	err = s.opt.Store.InTx(ctx, func(q school.Queries) error {
		_, err := s.opt.Access.End(ctx, q, access.Session(sess.PupilID, ref), "saml single logout")
		return err
	})
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	var fl samlLogoutFlow
	seen := map[string]bool{}
	for _, p := range parts {
		if seen[p.PlatformID+"\x00"+p.NameID] {
			continue
		}
		seen[p.PlatformID+"\x00"+p.NameID] = true
		if sp, err := s.spByID(ctx, p.PlatformID); err == nil {
			if _, err := soapSLOEndpoint(sp); err == nil {
				fl.Done = append(fl.Done, sp.Platform.Name) // told over the back channel
				continue
			}
		}
		fl.Remaining = append(fl.Remaining, samlLogoutTarget{PlatformID: p.PlatformID, NameID: p.NameID, NameIDFormat: p.NameIDFormat, SessionIndex: p.SessionIndex})
	}
	s.log.Info("saml: idp-initiated logout", "session_participants", len(parts), "front_channel", len(fl.Remaining))
	s.nextLogout(w, r, fl)
}

// sloEndpoint returns the SP's single logout service for requests,
// preferring HTTP-Redirect.
func sloEndpoint(sp samlSP) (saml.Endpoint, error) {
	for _, b := range []string{saml.HTTPRedirectBinding, saml.HTTPPostBinding} {
		for _, d := range sp.Metadata.SPSSODescriptors {
			for _, e := range d.SingleLogoutServices {
				if e.Binding == b && (strings.HasPrefix(e.Location, "https://") || strings.HasPrefix(e.Location, "http://")) {
					return e, nil
				}
			}
		}
	}
	return saml.Endpoint{}, errNoSLO
}

// nextLogout sends the browser to the next SP with a single logout
// service, or shows the logged-out page when none is left.
func (s *IdP) nextLogout(w http.ResponseWriter, r *http.Request, fl samlLogoutFlow) {
	ctx := r.Context()
	noStore(w)
	for len(fl.Remaining) > 0 {
		t := fl.Remaining[0]
		fl.Remaining = fl.Remaining[1:]
		sp, err := s.spByID(ctx, t.PlatformID)
		if err != nil {
			s.log.Warn("saml: logout: platform gone", "platform", t.PlatformID, "err", err)
			continue
		}
		ep, err := sloEndpoint(sp)
		if err != nil {
			fl.Failed = append(fl.Failed, sp.Platform.Name)
			continue
		}
		lr := s.logoutRequest(sp, ep.Location, t.NameIDFormat, t.NameID, t.SessionIndex)
		fl.Current = sp.Platform.Name
		if _, err := s.storeFlow(ctx, "logout", lr.ID, fl); err != nil {
			s.opt.Site.ServerError(w, r, err)
			return
		}
		pair, err := s.opt.Keys.Signing(ctx)
		if err != nil {
			s.opt.Site.ServerError(w, r, err)
			return
		}
		s.log.Info("saml: logout request sent", "sp", sp.Platform.ClientID, "binding", ep.Binding)
		if ep.Binding == saml.HTTPRedirectBinding {
			u, err := signedRedirectURL(pair, ep.Location, "SAMLRequest", lr.Element(), "")
			if err != nil {
				s.opt.Site.ServerError(w, r, err)
				return
			}
			http.Redirect(w, r, u, http.StatusFound)
			return
		}
		sc, err := signingContext(pair)
		if err != nil {
			s.opt.Site.ServerError(w, r, err)
			return
		}
		signed, err := sc.SignEnveloped(lr.Element())
		if err != nil {
			s.opt.Site.ServerError(w, r, err)
			return
		}
		doc := etree.NewDocument()
		doc.SetRoot(signed)
		b, err := doc.WriteToBytes()
		if err != nil {
			s.opt.Site.ServerError(w, r, err)
			return
		}
		s.postForm(w, r, ep.Location, "SAMLRequest", b, "")
		return
	}
	s.opt.Site.Render(w, r, http.StatusOK, "saml-logout", samlLogoutData{Done: fl.Done, Failed: fl.Failed})
}

// signedRedirectURL encodes a message for the HTTP-Redirect binding and
// signs it (RSA-SHA256 over SAMLRequest|SAMLResponse, RelayState, SigAlg).
func signedRedirectURL(pair KeyPair, dest, param string, el *etree.Element, relay string) (string, error) {
	doc := etree.NewDocument()
	doc.SetRoot(el)
	raw, err := doc.WriteToBytes()
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	fw, err := flate.NewWriter(&buf, flate.DefaultCompression)
	if err != nil {
		return "", err
	}
	if _, err := fw.Write(raw); err != nil {
		return "", err
	}
	if err := fw.Close(); err != nil {
		return "", err
	}
	q := param + "=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if relay != "" {
		q += "&RelayState=" + url.QueryEscape(relay)
	}
	q += "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
	sum := sha256.Sum256([]byte(q))
	sig, err := rsa.SignPKCS1v15(rand.Reader, pair.Key, crypto.SHA256, sum[:])
	if err != nil {
		return "", err
	}
	q += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	sep := "?"
	if strings.Contains(dest, "?") {
		sep = "&"
	}
	return dest + sep + q, nil
}

// serveSLO receives a LogoutRequest from an SP (SP-initiated logout; the
// signature is verified against the SP's metadata certificates only, the
// id is used once) or a LogoutResponse answering ElevID's own
// LogoutRequest in an IdP-initiated logout.
func (s *IdP) serveSLO(w http.ResponseWriter, r *http.Request) {
	if !s.limitMessage(w, r) {
		return
	}
	if r.URL.Query().Has("SAMLResponse") || r.PostForm.Has("SAMLResponse") {
		s.serveLogoutResponse(w, r)
		return
	}
	ctx := r.Context()
	idp, err := s.idp(ctx)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	req, err := saml.NewIdpLogoutRequest(idp, r)
	if err != nil {
		s.reject(w, r, http.StatusBadRequest, "saml.error.malformed", "", err)
		return
	}
	if !s.acceptMessage(w, r, req.RequestBuffer) {
		return
	}
	if err := req.Validate(); err != nil {
		claimed := ""
		if req.Request.Issuer != nil {
			claimed = req.Request.Issuer.Value
		}
		s.reject(w, r, http.StatusBadRequest, "saml.error.invalid", claimed, err)
		return
	}
	entity := req.ServiceProviderMetadata.EntityID
	sp, err := s.sps.lookup(ctx, s.opt.Store, entity)
	if err != nil {
		s.reject(w, r, http.StatusBadRequest, "saml.error.unknown_sp", entity, err)
		return
	}
	status := saml.StatusSuccess
	if req.Request.NameID != nil {
		if err := s.endSPSessions(ctx, sp, req.Request.NameID.Value, req.Request.SessionIndex); err != nil {
			s.log.Error("saml: logout: ending sessions failed", "sp", entity, "err", err)
			status = saml.StatusResponder
		}
	}
	s.log.Info("saml: logout request accepted", "sp", entity, "binding", req.Binding, "request_id", req.Request.ID)
	noStore(w)
	if err := req.WriteLogoutResponse(w, req.MakeLogoutResponse(status)); err != nil {
		s.opt.Site.ServerError(w, r, err)
	}
}

// endSPSessions ends, through the access service, the login sessions in
// which sp was given nameID (and sessionIndex, when the request names
// one): the other platforms of those sessions get logout notices, sp
// itself does not (it asked).
func (s *IdP) endSPSessions(ctx context.Context, sp samlSP, nameID string, idx *saml.SessionIndex) error {
	parts, err := s.opt.Store.SAMLParticipantsByNameID(ctx, sp.Platform.ID, nameID)
	if err != nil {
		return err
	}
	return s.opt.Store.InTx(ctx, func(q school.Queries) error {
		done := map[string]bool{}
		for _, p := range parts {
			if (idx != nil && idx.Value != "" && idx.Value != p.SessionIndex) || done[p.SessionID] {
				continue
			}
			done[p.SessionID] = true
			ref := school.SAMLSessionRef(p.SessionID, p.PupilID)
			if ref == "" {
				continue // not a login session's (never recorded so)
			}
			sc := access.Session(p.PupilID, ref)
			sc.Initiator = sp.Platform.ID
			if _, err := s.opt.Access.End(ctx, q, sc, "saml single logout"); err != nil {
				return err
			}
		}
		return nil
	})
}

// serveLogoutResponse continues an IdP-initiated logout. The response only
// moves the browser on (the sessions already ended), so its signature is
// not required; it must answer a LogoutRequest ElevID sent and is used once.
func (s *IdP) serveLogoutResponse(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var raw []byte
	var err error
	if r.Method == http.MethodGet {
		var b []byte
		if b, err = base64.StdEncoding.DecodeString(r.URL.Query().Get("SAMLResponse")); err == nil {
			raw, err = io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(b)), int64(s.opt.MaxMessageBytes)+1))
		}
	} else {
		raw, err = base64.StdEncoding.DecodeString(r.PostForm.Get("SAMLResponse"))
	}
	if err == nil && len(raw) > s.opt.MaxMessageBytes {
		err = errors.New("message too large")
	}
	var resp saml.LogoutResponse
	if err == nil {
		err = xml.Unmarshal(raw, &resp)
	}
	if err != nil || resp.InResponseTo == "" {
		s.reject(w, r, http.StatusBadRequest, "saml.error.malformed", "", fmt.Errorf("logout response: %v", err))
		return
	}
	f, err := s.opt.Store.ConsumeSAMLFlow(ctx, flowID("logout", resp.InResponseTo))
	if err != nil {
		s.flowError(w, r, err)
		return
	}
	var fl samlLogoutFlow
	if err := json.Unmarshal(f.Data, &fl); err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	if resp.Status.StatusCode.Value == saml.StatusSuccess {
		fl.Done = append(fl.Done, fl.Current)
	} else {
		fl.Failed = append(fl.Failed, fl.Current)
	}
	s.nextLogout(w, r, fl)
}

// logoutRequest returns an (unsigned) LogoutRequest to sp at destination
// for the NameID (with its format) and the session index ElevID issued
// to sp; an empty sessionIndex names none. The front-channel logout
// (HTTP-Redirect/POST) and the SOAP back-channel logout both send it.
func (s *IdP) logoutRequest(sp samlSP, destination, nameIDFormat, nameID, sessionIndex string) *saml.LogoutRequest {
	lr := &saml.LogoutRequest{
		ID: randomID(), Version: "2.0", IssueInstant: s.now().UTC(), Destination: destination,
		Issuer: &saml.Issuer{Format: entityFormat, Value: s.entityID},
		NameID: &saml.NameID{Format: nameIDFormat, NameQualifier: s.entityID, SPNameQualifier: sp.Platform.ClientID, Value: nameID},
	}
	if sessionIndex != "" {
		lr.SessionIndex = &saml.SessionIndex{Value: sessionIndex}
	}
	return lr
}
