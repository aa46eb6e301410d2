package oidc

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
)

// loginHandoff is where zitadel sends the browser after storing an
// authorization request (Client.LoginURL). It sends the pupil to the
// passkey login when needed, checks consent, and answers the platform
// with a code (or an OAuth error) itself. The request and the code are
// sealed values: the hand-off writes nothing.
func (p *Provider) loginHandoff(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := r.URL.Query().Get("id")
	got, err := p.storage.AuthRequestByID(ctx, id)
	if errors.Is(err, school.ErrNotFound) || errors.Is(err, school.ErrExpired) {
		p.opt.Site.Error(w, r, http.StatusBadRequest, "oidc.err.expired")
		return
	}
	if err != nil {
		p.opt.Site.ServerError(w, r, err)
		return
	}
	ar := got.(*authRequest)
	stateFrom(ctx).client = ar.client
	fail := func(e *oidc.Error) { op.AuthRequestError(w, r, ar, e, p.provider) }
	params := ar.st.Params

	returnTo := oidcLoginPath + "?id=" + url.QueryEscape(id)
	// The session and the pupil's consent state for the platform, in one
	// read: the consent is read on this request, not taken from earlier.
	sess, cs, err := p.opt.Sessions.CurrentConsent(r, ar.client.pf.ID)
	if err != nil && !errors.Is(err, school.ErrNotFound) && !errors.Is(err, school.ErrExpired) {
		p.opt.Site.ServerError(w, r, err)
		return
	}
	promptNone := slices.Contains(params.Prompt, oidc.PromptNone)
	if err != nil {
		if promptNone {
			fail(oidc.ErrLoginRequired())
			return
		}
		http.Redirect(w, r, p.opt.LoginURL(returnTo), http.StatusSeeOther)
		return
	}
	// prompt=login (max_age 0) and max_age ask for a login no older than
	// max_age; a login made after this request began always counts.
	if ma := params.MaxAge; ma != nil && sess.AuthTime.Before(ar.st.CreatedAt) &&
		p.opt.Now().Sub(sess.AuthTime) > time.Duration(*ma)*time.Second {
		if promptNone || r.URL.Query().Get("reauth") != "" {
			fail(oidc.ErrLoginRequired())
			return
		}
		http.Redirect(w, r, p.opt.ReauthURL(returnTo+"&reauth=1"), http.StatusSeeOther)
		return
	}
	if params.Hint != "" && ar.client.subject(p.opt.PairwiseSecret, sess.SubjectID) != params.Hint {
		// The platform asked for another pupil (id_token_hint).
		fail(oidc.ErrLoginRequired().WithDescription("another pupil is logged in"))
		return
	}
	if err := release.Allowed(cs, ar.client.pf.ID); err != nil {
		p.log.Info("login refused", "pupil", sess.SubjectID, "platform", ar.client.pf.ID, "reason", err)
		fail(oidc.ErrAccessDenied().WithDescription("%s", refusalText(err)))
		return
	}
	// acr_values (voluntary in OIDC) are honoured like SAML's minimum
	// comparison: a login that meets none of them is refused rather
	// than reported weaker than asked.
	acr, ok := login.MeetAuthnContext(params.ACRValues, "minimum", login.ACRFor(sess.UserVerified))
	if !ok {
		p.log.Info("login refused: acr_values not met", "pupil", sess.SubjectID, "platform", ar.client.pf.ID, "acr_values", params.ACRValues)
		fail(oidc.ErrAccessDenied().WithDescription("unmet_authentication_requirements: the requested acr_values cannot be met"))
		return
	}
	if err := p.storage.complete(ar, sess.SubjectID, sess.Ref, sess.AuthTime, sess.AMR, acr); err != nil {
		p.opt.Site.ServerError(w, r, err)
		return
	}
	if ar.GetResponseMode() == oidc.ResponseModeFormPost {
		p.formPost(w, r, ar)
		return
	}
	op.AuthResponseCode(w, r, ar, codeAuthorizer{p.provider, ar.code})
}

// oidcPostData is the data of the oidc-post page.
type oidcPostData struct {
	Action string
	Fields []oidcPostField
}

type oidcPostField struct{ Name, Value string }

// formPost answers response_mode=form_post with ElevID's own page: a form
// with a visible button, submitted by an external script
// (/static/auto-post.js) that ElevID's CSP allows. zitadel's own page
// submits from an inline onload handler, which the CSP blocks.
func (p *Provider) formPost(w http.ResponseWriter, r *http.Request, ar *authRequest) {
	resp, err := op.BuildAuthResponseCodeResponsePayload(r.Context(), ar, codeAuthorizer{p.provider, ar.code})
	if err != nil {
		op.AuthRequestError(w, r, ar, err, p.provider)
		return
	}
	d := oidcPostData{Action: ar.GetRedirectURI(), Fields: []oidcPostField{{"code", resp.Code}}}
	if resp.State != "" {
		d.Fields = append(d.Fields, oidcPostField{"state", resp.State})
	}
	if resp.SessionState != "" {
		d.Fields = append(d.Fields, oidcPostField{"session_state", resp.SessionState})
	}
	p.opt.Site.Render(w, r, http.StatusOK, "oidc-post", d)
}

// refusalText is the error_description of an access_denied for a
// release refusal.
func refusalText(err error) string {
	switch {
	case errors.Is(err, release.ErrNotActivated):
		return "the pupil's school has not activated this platform"
	case errors.Is(err, release.ErrQuarantined):
		return "the pupil is not active"
	}
	return "consent does not cover this platform"
}
