package idp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/elevid/elevid/school"
)

// backchannelEvent is the event claim of an OIDC back-channel logout token.
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// sid returns the session id a platform sees for a login session: derived
// per platform, so that platforms cannot link pupils through it.
func (p *OIDC) sid(sessionRef, clientID string) string {
	if sessionRef == "" {
		return ""
	}
	return Pairwise(p.opt.PairwiseSecret, "sid:"+sessionRef, clientID)[:32]
}

// LogoutPupil ends a pupil's grants at one platform, or at every platform
// when platformID is empty (consent withdrawn, pupil quarantined): their
// tokens are revoked and each platform that held an active token and
// registered a back-channel logout URI is sent a logout token. Delivery
// is attempted three times per platform; the returned error names the
// platforms that could not be reached (the tokens are revoked anyway).
func (p *OIDC) LogoutPupil(ctx context.Context, pupilID, platformID string) error {
	if pupilID == "" {
		return fmt.Errorf("%w: no pupil", school.ErrInvalid)
	}
	return p.logout(ctx, school.OIDCTokenFilter{PupilID: pupilID, PlatformID: platformID}, "")
}

// SessionEnded ends the grants made within one login session (logout,
// session revoked, expired) and tells the platforms involved; sessionRef
// is school.Session.Ref.
func (p *OIDC) SessionEnded(ctx context.Context, sessionRef string) error {
	if sessionRef == "" {
		return nil
	}
	return p.logout(ctx, school.OIDCTokenFilter{SessionRef: sessionRef}, "")
}

// logout revokes the tokens f selects and notifies each platform but
// skipPlatform (the one that asked to log out).
func (p *OIDC) logout(ctx context.Context, f school.OIDCTokenFilter, skipPlatform string) error {
	toks, err := p.opt.Store.ListOIDCTokens(ctx, f)
	if err != nil {
		return err
	}
	if _, err := p.opt.Store.RevokeOIDCTokens(ctx, f); err != nil {
		return err
	}
	type target struct{ platformID, subject, sessionRef string }
	seen := map[target]bool{}
	for _, t := range toks {
		if t.PlatformID != skipPlatform {
			seen[target{t.PlatformID, t.Subject, t.SessionRef}] = true
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for tg := range seen {
		c, err := p.storage.clientByPlatform(context.WithoutCancel(ctx), tg.platformID)
		if err != nil || c.s.BackchannelLogoutURI == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.sendLogout(ctx, c, tg.subject, p.sid(tg.sessionRef, c.GetID())); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("platform %s: %w", c.GetID(), err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sendLogout posts a signed logout token to the platform's back-channel
// logout URI, retrying twice.
func (p *OIDC) sendLogout(ctx context.Context, c *oidcClient, subject, sid string) error {
	token, err := p.logoutToken(ctx, c, subject, sid)
	if err != nil {
		return err
	}
	body := url.Values{"logout_token": {token}}.Encode()
	var last error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 300 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.s.BackchannelLogoutURI, strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := p.opt.HTTPClient.Do(req)
		if err != nil {
			last = err
			continue
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent {
			p.log.Info("back-channel logout delivered", "client_id", c.GetID())
			return nil
		}
		last = fmt.Errorf("status %d", resp.StatusCode)
		if resp.StatusCode == http.StatusBadRequest {
			break // the platform refused the token; retrying will not help
		}
	}
	p.log.Warn("back-channel logout failed", "client_id", c.GetID(), "err", last)
	return last
}

// logoutToken builds a logout token (OIDC Back-Channel Logout 1.0 §2.4).
func (p *OIDC) logoutToken(ctx context.Context, c *oidcClient, subject, sid string) (string, error) {
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
		"jti": school.NewID(), "sub": subject, "events": map[string]any{backchannelEvent: map[string]any{}},
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
