package saml

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"

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
// the platform. It is kept as a flow, so the page can be shown again (a
// reload, the other language) until the flow expires.
type samlRefusedData struct {
	Message    string `json:"message"` // text key
	Platform   string `json:"platform"`
	Action     string `json:"action"`
	Value      string `json:"value"` // base64 Response
	RelayState string `json:"relay_state,omitempty"`
}

// refuse signs a Response with the refusal's status for the ACS
// (InResponseTo the request, with its RelayState), keeps it with the
// explanation and sends the pupil to /saml/refused, which shows why the
// platform's request is not answered, with a "back to the platform"
// button that posts the Response, so the platform can show its own
// message.
func (s *IdP) refuse(w http.ResponseWriter, r *http.Request, sp samlSP, fl samlSSOFlow, ref samlRefusal) {
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
	token, err := s.storeFlow(r.Context(), "refused", "", samlRefusedData{
		Message: ref.Key, Platform: sp.Platform.Name, Action: fl.ACSURL,
		Value: base64.StdEncoding.EncodeToString(resp), RelayState: fl.RelayState,
	})
	if err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	s.log.Info("saml: request refused", "sp", sp.Platform.ClientID, "status", ref.Sub, "in_response_to", fl.RequestID, "why", ref.Why)
	noStore(w)
	http.Redirect(w, r, "/saml/refused?flow="+url.QueryEscape(token), http.StatusSeeOther)
}

// serveRefused shows a kept refusal (GET /saml/refused?flow=TOKEN).
func (s *IdP) serveRefused(w http.ResponseWriter, r *http.Request) {
	f, err := s.opt.Store.GetSAMLFlow(r.Context(), flowID("refused", r.URL.Query().Get("flow")))
	if err != nil {
		s.flowError(w, r, err)
		return
	}
	var d samlRefusedData
	if err := json.Unmarshal(f.Data, &d); err != nil {
		s.opt.Site.ServerError(w, r, err)
		return
	}
	noStore(w)
	s.opt.Site.Render(w, r, http.StatusForbidden, "saml-refused", d)
}
