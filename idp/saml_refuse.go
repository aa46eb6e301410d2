package idp

import (
	"encoding/base64"
	"errors"
	"net/http"

	"github.com/crewjam/saml"

	"github.com/elevid/elevid/idp/release"
)

// Second-level SAML status codes ElevID answers with.
const (
	samlStatusRequestDenied  = "urn:oasis:names:tc:SAML:2.0:status:RequestDenied"
	samlStatusNoPassive      = "urn:oasis:names:tc:SAML:2.0:status:NoPassive"
	samlStatusNoAuthnContext = "urn:oasis:names:tc:SAML:2.0:status:NoAuthnContext"
)

// samlRefusal is why a valid AuthnRequest is not answered with an
// assertion: the explanation shown to the pupil (a text key) and the
// status the platform gets.
type samlRefusal struct {
	Key       string // text key of the explanation
	Code, Sub string // top-level and second-level status codes
	Why       string // for the log (ids only)
}

// refusalFor turns a refusal of package release (release.Refused) into
// what the pupil is told and the status the platform gets: Responder /
// RequestDenied for each (not activated for the school, pupil not
// active, no consent).
func refusalFor(err error) *samlRefusal {
	key := "saml.error.no_consent"
	switch {
	case errors.Is(err, release.ErrQuarantined):
		key = "saml.error.inactive"
	case errors.Is(err, release.ErrNotActivated):
		key = "saml.error.not_activated"
	}
	return &samlRefusal{Key: key, Code: saml.StatusResponder, Sub: samlStatusRequestDenied, Why: err.Error()}
}

// samlRefusedData is the data of the saml-refused page: the explanation
// and a form (not sent by itself) that takes the signed refusal back to
// the platform.
type samlRefusedData struct {
	Message    string // text key
	Platform   string
	Action     string
	Value      string // base64 Response
	RelayState string
}

// refuse shows the pupil why the platform's request is not answered, with
// a "back to the platform" button that posts a signed Response with the
// refusal's status to the ACS (InResponseTo the request, with its
// RelayState), so the platform can show its own message.
func (s *SAML) refuse(w http.ResponseWriter, r *http.Request, sp samlSP, fl samlSSOFlow, ref samlRefusal) {
	pair, err := s.opt.Keys.Signing(r.Context())
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	resp, err := s.buildStatusResponse(pair, s.now(), fl.ACSURL, fl.RequestID, ref.Code, ref.Sub)
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	s.log.Info("saml: request refused", "sp", sp.Platform.ClientID, "status", ref.Sub, "in_response_to", fl.RequestID, "why", ref.Why)
	noStore(w)
	s.opt.Site.Render(w, r, http.StatusForbidden, "saml-refused", samlRefusedData{
		Message: ref.Key, Platform: sp.Platform.Name, Action: fl.ACSURL,
		Value: base64.StdEncoding.EncodeToString(resp), RelayState: fl.RelayState,
	})
}
