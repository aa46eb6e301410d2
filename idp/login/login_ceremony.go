package login

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
	"github.com/gorilla/securecookie"

	"github.com/elevid/elevid/idp/passkey"
)

// A pupil's login ceremony is not stored: its session data (the challenge)
// is sealed with the session keys (securecookie: AES-CTR and HMAC-SHA256,
// the name bound in, so a session cookie is not a ceremony) and held by
// the browser between /login/begin and /login/finish. It expires with
// LoginTimeout, and its single use is the unique Ceremony of the session
// it creates (school.Session.Ceremony): a login costs no ceremony row.

// ceremonyName names sealed login ceremonies.
const ceremonyName = "elevid-login-ceremony"

// sealedCeremony is what a sealed login ceremony holds.
type sealedCeremony struct {
	Data    webauthn.SessionData `json:"d"`
	Expires time.Time            `json:"e"`
}

// sealCeremony seals sd, valid for LoginTimeout.
func (l *Login) sealCeremony(sd *webauthn.SessionData) (string, error) {
	b, err := json.Marshal(sealedCeremony{Data: *sd, Expires: l.opt.Now().Add(l.opt.Passkey.LoginTimeout)})
	if err != nil {
		return "", err
	}
	return securecookie.EncodeMulti(ceremonyName, b, l.ceremonies...)
}

// openCeremony returns the session data sealed in v: passkey.ErrCeremony
// when v is not a ceremony of this server's keys or has expired.
func (l *Login) openCeremony(v string) (webauthn.SessionData, error) {
	var b []byte
	if v == "" || len(v) > 4096 {
		return webauthn.SessionData{}, passkey.ErrCeremony
	}
	if err := securecookie.DecodeMulti(ceremonyName, v, &b, l.ceremonies...); err != nil {
		return webauthn.SessionData{}, fmt.Errorf("%w: %v", passkey.ErrCeremony, err)
	}
	var c sealedCeremony
	if err := json.Unmarshal(b, &c); err != nil {
		return webauthn.SessionData{}, fmt.Errorf("%w: %v", passkey.ErrCeremony, err)
	}
	if !l.opt.Now().Before(c.Expires) {
		return webauthn.SessionData{}, fmt.Errorf("%w: expired", passkey.ErrCeremony)
	}
	return c.Data, nil
}

// ceremonyRef is the stored name of a ceremony: the hex SHA-256 of its
// challenge (random, 32 bytes).
func ceremonyRef(sd webauthn.SessionData) string {
	sum := sha256.Sum256([]byte(sd.Challenge))
	return hex.EncodeToString(sum[:])
}

// windowCounter counts hits per key in fixed windows, in memory. It keeps
// at most max keys per window; past that, new keys share one count, so an
// attacker with many addresses cannot grow it without bound.
type windowCounter struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	start  time.Time
	counts map[string]int
}

func newWindowCounter(window time.Duration, max int) *windowCounter {
	return &windowCounter{window: window, max: max, counts: map[string]int{}}
}

// hit counts one hit of key at now and returns the key's count in the
// current window.
func (c *windowCounter) hit(key string, now time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.start) >= c.window || now.Before(c.start) {
		c.start, c.counts = now, map[string]int{}
	}
	if _, ok := c.counts[key]; !ok && len(c.counts) >= c.max {
		key = "" // the overflow count
	}
	c.counts[key]++
	return c.counts[key]
}
