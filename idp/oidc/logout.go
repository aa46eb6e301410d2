package oidc

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/access"
)

// BackchannelLogoutEvent is the event claim of an OIDC back-channel
// logout token.
const BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// sid returns the session id a platform sees for a login session: derived
// per platform, so that platforms cannot link pupils through it.
func (p *Provider) sid(sessionRef, clientID string) string {
	if sessionRef == "" {
		return ""
	}
	return release.Pairwise(p.opt.PairwiseSecret, "sid:"+sessionRef, clientID)[:32]
}

// RunLogoutQueue delivers the OIDC logout notices of the durable queue
// (school.LogoutNotice, queued by package access in the transaction that
// ended the access) until ctx ends, through the queue loop every protocol
// shares (access.Delivery): at once when this node queued some (woken
// through the access service), and every 15 s for those of other nodes
// and retries. Every node runs it; leases keep two nodes from sending one
// notice. Each attempt signs a fresh logout token; failed ones are
// retried after 30 s, 1, 2, 4 … minutes (at most an hour apart) for a
// day; a platform that answers 400 or has no back-channel logout URI is
// not asked again (the notice stays visible until it expires).
func (p *Provider) RunLogoutQueue(ctx context.Context, owner string) {
	p.logoutDelivery().Run(ctx, owner)
}

// DeliverQueuedLogouts claims the due logout notices for owner and tries
// each once; it returns how many were delivered and how many failed.
func (p *Provider) DeliverQueuedLogouts(ctx context.Context, owner string) (delivered, failed int, err error) {
	return p.logoutDelivery().Deliver(ctx, owner)
}

func (p *Provider) logoutDelivery() *access.Delivery {
	return &access.Delivery{Protocol: school.ProtocolOIDC, Queue: p.opt.Store, Send: p.sendQueuedLogout,
		Wake: p.wake, Now: p.opt.Now, Logger: p.log}
}

// sendQueuedLogout sends notice n as a logout token to its platform's
// back-channel logout URI.
func (p *Provider) sendQueuedLogout(ctx context.Context, n school.LogoutNotice) (string, error) {
	c, err := p.storage.clientByPlatform(ctx, n.PlatformID)
	if err != nil {
		return n.PlatformID, err
	}
	if c.s.BackchannelLogoutURI == "" {
		return c.GetID(), fmt.Errorf("%w: it no longer has a back-channel logout URI", errLogoutRefused)
	}
	sid := n.Sid
	if sid == "" {
		sid = p.sid(n.SessionRef, c.GetID())
	}
	return c.GetID(), p.postLogout(ctx, c, n.Subject, sid)
}

// errLogoutRefused means the platform answered 400 to a logout token:
// sending it again will not help.
var errLogoutRefused = access.Undeliverable("the platform refused the logout token")

// postLogout signs a logout token and posts it once.
func (p *Provider) postLogout(ctx context.Context, c *oidcClient, subject, sid string) error {
	token, err := p.logoutToken(ctx, c, subject, sid)
	if err != nil {
		return err
	}
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.s.BackchannelLogoutURI, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.opt.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		p.log.Info("back-channel logout delivered", "client_id", c.GetID())
		return nil
	case http.StatusBadRequest:
		return errLogoutRefused
	}
	return fmt.Errorf("status %d", resp.StatusCode)
}

// logoutToken builds a logout token (OIDC Back-Channel Logout 1.0 §2.4).
func (p *Provider) logoutToken(ctx context.Context, c *oidcClient, subject, sid string) (string, error) {
	key, err := p.keys.Signing(ctx, c.s.Alg())
	if err != nil {
		return "", err
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: key.SignatureAlgorithm(), Key: &jose.JSONWebKey{Key: key.priv, KeyID: key.ID()}},
		(&jose.SignerOptions{}).WithType("logout+jwt"))
	if err != nil {
		return "", err
	}
	now := p.opt.Now()
	claims := map[string]any{
		"iss": p.opt.Issuer, "aud": c.GetID(), "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": school.NewID(), "sub": subject, "events": map[string]any{BackchannelLogoutEvent: map[string]any{}},
	}
	if sid != "" {
		claims["sid"] = sid
	}
	payload, err := jsonMarshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }
