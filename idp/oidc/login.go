package oidc

import (
	"errors"
	"fmt"
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

	returnTo := HandoffPath + "?id=" + url.QueryEscape(id)
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
	h := p.decide(ar, sess, cs)
	switch {
	case h.stale:
		if promptNone || r.URL.Query().Get("reauth") != "" {
			fail(oidc.ErrLoginRequired())
			return
		}
		http.Redirect(w, r, p.opt.ReauthURL(returnTo+"&reauth=1"), http.StatusSeeOther)
		return
	case h.refusal != nil:
		if h.reason != "" {
			p.log.Info("login refused", "pupil", sess.SubjectID, "platform", ar.client.pf.ID, "reason", h.reason)
		}
		fail(h.refusal)
		return
	}
	if err := p.storage.complete(ar, sess.SubjectID, sess.Ref, sess.AuthTime, sess.AMR, h.acr); err != nil {
		p.opt.Site.ServerError(w, r, err)
		return
	}
	if ar.GetResponseMode() == oidc.ResponseModeFormPost {
		p.formPost(w, r, ar)
		return
	}
	op.AuthResponseCode(w, r, ar, codeAuthorizer{p.provider, ar.code})
}

// handoff is what the hand-off does with an authorization request and a
// pupil's session.
type handoff struct {
	acr   string // the session meets the request: the code carries this acr
	stale bool   // the login is older than the request's max_age allows
	// refusal answers the platform; reason, when set, goes to the log.
	refusal *oidc.Error
	reason  string
}

// decide is the hand-off's decision for ar, the pupil's session sess and
// the pupil's consent state cs for ar's platform (read on this request).
func (p *Provider) decide(ar *authRequest, sess school.Session, cs school.ConsentState) handoff {
	params := ar.st.Params
	// prompt=login (max_age 0) and max_age ask for a login no older than
	// max_age; a login made after this request began always counts.
	if ma := params.MaxAge; ma != nil && sess.AuthTime.Before(ar.st.CreatedAt) &&
		p.opt.Now().Sub(sess.AuthTime) > time.Duration(*ma)*time.Second {
		return handoff{stale: true}
	}
	if params.Hint != "" && ar.client.subject(p.opt.PairwiseSecret, sess.SubjectID) != params.Hint {
		// The platform asked for another pupil (id_token_hint).
		return handoff{refusal: oidc.ErrLoginRequired().WithDescription("another pupil is logged in")}
	}
	if err := release.Allowed(cs, ar.client.pf.ID); err != nil {
		return handoff{refusal: oidc.ErrAccessDenied().WithDescription("%s", refusalText(err)), reason: err.Error()}
	}
	// acr_values (voluntary in OIDC) are honoured like SAML's minimum
	// comparison: a login that meets none of them is refused rather
	// than reported weaker than asked.
	acr, ok := login.MeetAuthnContext(params.ACRValues, "minimum", login.ACRFor(sess.UserVerified))
	if !ok {
		return handoff{refusal: oidc.ErrAccessDenied().WithDescription("unmet_authentication_requirements: the requested acr_values cannot be met"),
			reason: fmt.Sprintf("acr_values %v not met", params.ACRValues)}
	}
	return handoff{acr: acr}
}

// ContinueLogin is the hand-off run inside the passkey login's finish
// request (a login.Continuation, wired with login.Login.ContinueAt): when
// returnTo is the hand-off of an authorization request that is answered
// by a redirect, the login reads the pupil's consent state for its
// platform with the passkey, and finish decides with it and the new
// session; when the session meets the request, finish completes it and
// returns the platform's redirect URI with the code, and the browser goes
// there without a request to the hand-off. Anything else (a refusal,
// response_mode=form_post, an expired or unknown request) goes to the
// hand-off, which decides again and answers as always.
func (p *Provider) ContinueLogin(r *http.Request, returnTo *url.URL) (string, func(school.Session, school.ConsentState) (string, bool)) {
	ctx := r.Context()
	got, err := p.storage.AuthRequestByID(ctx, returnTo.Query().Get("id"))
	if err != nil {
		return "", nil
	}
	ar := got.(*authRequest)
	if ar.GetResponseMode() == oidc.ResponseModeFormPost {
		return "", nil
	}
	return ar.client.pf.ID, func(sess school.Session, cs school.ConsentState) (string, bool) {
		h := p.decide(ar, sess, cs)
		if h.stale || h.refusal != nil {
			return "", false
		}
		if err := p.storage.complete(ar, sess.SubjectID, sess.Ref, sess.AuthTime, sess.AMR, h.acr); err != nil {
			p.log.Warn("login hand-off: the code was not sealed; the browser goes to the hand-off", "err", err)
			return "", false
		}
		next, err := op.BuildAuthResponseCallbackURL(ctx, ar, codeAuthorizer{p.provider, ar.code})
		if err != nil {
			p.log.Warn("login hand-off: no redirect; the browser goes to the hand-off", "err", err)
			return "", false
		}
		return next, true
	}
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
