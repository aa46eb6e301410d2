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
// is attempted three times per platform at once; a platform that could
// not be reached gets the logout later from the queue (RunLogoutQueue),
// and the returned error names it (the tokens are revoked anyway).
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
			sid := p.sid(tg.sessionRef, c.GetID())
			err := p.sendLogout(ctx, c, tg.subject, sid)
			if err == nil {
				return
			}
			// A refused token is not worth another try; anything else is
			// retried from the queue.
			if !errors.Is(err, errLogoutRefused) {
				if qerr := p.queueLogout(context.WithoutCancel(ctx), c, tg.subject, sid, err); qerr != nil {
					err = errors.Join(err, qerr)
				}
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("platform %s: %w", c.GetID(), err))
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Retries of back-channel logouts from the queue.
const (
	logoutQueueTTL = 24 * time.Hour // a notice is given up after this long
	logoutLease    = time.Minute
	logoutPoll     = 15 * time.Second
)

// queueLogout keeps a logout the platform did not take, for RunLogoutQueue
// to retry.
func (p *OIDC) queueLogout(ctx context.Context, c *oidcClient, subject, sid string, cause error) error {
	now := p.opt.Now()
	n, err := p.opt.Store.QueueLogout(ctx, school.LogoutNotice{PlatformID: c.pf.ID, Subject: subject, Sid: sid,
		NextAt: now.Add(school.RetryDelay(1)), ExpiresAt: now.Add(logoutQueueTTL)})
	if err != nil {
		p.log.Error("back-channel logout lost: queueing it failed", "client_id", c.GetID(), "err", err)
		return err
	}
	p.log.Warn("back-channel logout queued for retry", "client_id", c.GetID(), "notice", n.ID, "cause", cause)
	return nil
}

// RunLogoutQueue retries queued back-channel logouts until ctx ends: every
// node runs it, and leases keep two nodes from sending one notice. Each
// attempt signs a fresh logout token; failed ones are retried after 30 s,
// 1, 2, 4 … minutes (at most an hour apart) for a day.
func (p *OIDC) RunLogoutQueue(ctx context.Context, owner string) {
	t := time.NewTicker(logoutPoll)
	defer t.Stop()
	for {
		if _, _, err := p.DeliverQueuedLogouts(ctx, owner); err != nil && ctx.Err() == nil {
			p.log.Error("back-channel logout queue", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// DeliverQueuedLogouts claims the due logout notices for owner and tries
// each once; it returns how many were delivered and how many failed.
func (p *OIDC) DeliverQueuedLogouts(ctx context.Context, owner string) (delivered, failed int, err error) {
	for {
		batch, err := p.opt.Store.ClaimLogouts(ctx, owner, logoutLease, 10)
		if err != nil || len(batch) == 0 {
			return delivered, failed, err
		}
		for _, n := range batch {
			if p.deliverQueued(ctx, owner, n) {
				delivered++
			} else {
				failed++
			}
		}
	}
}

func (p *OIDC) deliverQueued(ctx context.Context, owner string, n school.LogoutNotice) bool {
	log := p.log.With("notice", n.ID, "attempt", n.Attempts)
	c, err := p.storage.clientByPlatform(ctx, n.PlatformID)
	if err == nil && c.s.BackchannelLogoutURI == "" {
		err = fmt.Errorf("%w: it no longer has a back-channel logout URI", errLogoutRefused)
	}
	if err == nil {
		err = p.postLogout(ctx, c, n.Subject, n.Sid)
	}
	if err == nil {
		if err := p.opt.Store.LogoutDelivered(context.WithoutCancel(ctx), n.ID, owner); err != nil {
			log.Error("queued back-channel logout delivered but not recorded", "err", err)
		} else {
			log.Info("queued back-channel logout delivered", "client_id", c.GetID())
		}
		return true
	}
	next := p.opt.Now().Add(school.RetryDelay(n.Attempts))
	if errors.Is(err, errLogoutRefused) {
		next = n.ExpiresAt // kept, visible, until pruned; never sent again
	}
	if rerr := p.opt.Store.LogoutFailed(context.WithoutCancel(ctx), n.ID, owner, err.Error(), next); rerr != nil {
		log.Error("queued back-channel logout failure not recorded", "err", rerr)
	}
	log.Warn("queued back-channel logout failed", "err", err, "next_attempt", next, "gives_up_at", n.ExpiresAt)
	return false
}

// sendLogout posts a signed logout token to the platform's back-channel
// logout URI, retrying twice unless the platform refused the token.
func (p *OIDC) sendLogout(ctx context.Context, c *oidcClient, subject, sid string) error {
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-time.After(time.Duration(attempt) * 300 * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if err = p.postLogout(ctx, c, subject, sid); err == nil || errors.Is(err, errLogoutRefused) {
			break
		}
	}
	if err != nil {
		p.log.Warn("back-channel logout failed", "client_id", c.GetID(), "err", err)
	}
	return err
}

// errLogoutRefused means the platform answered 400 to a logout token:
// sending it again will not help.
var errLogoutRefused = errors.New("the platform refused the logout token")

// postLogout signs a logout token and posts it once.
func (p *OIDC) postLogout(ctx context.Context, c *oidcClient, subject, sid string) error {
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
