package main

import (
	"crypto/sha256"
	"crypto/sha512"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/idp/passkey"
)

// passkeyConfig is the WebAuthn relying party of the configuration.
func (c Config) passkeyConfig() passkey.Config {
	return passkey.Config{RPID: c.WebAuthn.RPID, RPName: c.WebAuthn.RPName, Origins: c.WebAuthn.Origins,
		RegistrationTimeout: c.WebAuthn.Timeout.D(), LoginTimeout: c.WebAuthn.Timeout.D()}
}

// cookieKeys derives, from each configured session key (newest first), the
// 64-byte hash key and 32-byte block key gorilla/sessions wants, in pairs.
func cookieKeys(keys [][]byte) [][]byte {
	var out [][]byte
	for _, k := range keys {
		h := sha512.Sum512(append([]byte("elevid cookie hash key\x00"), k...))
		b := sha256.Sum256(append([]byte("elevid cookie block key\x00"), k...))
		out = append(out, h[:], b[:])
	}
	return out
}

// mountPasskeys mounts enrolment (/enrol) and the pupil login (/login,
// /logout, /me), and sets w.enroller and w.login for later features.
func mountPasskeys(w *wiring) error {
	cfg := w.app.cfg
	enr, err := enrolment.New(enrolment.Options{Store: w.app.store, Sealer: w.app.sealer, Site: w.site, Passkey: cfg.passkeyConfig(),
		CodeTTL: cfg.Enrolment.CodeTTL.D(), Logger: w.app.log})
	if err != nil {
		return err
	}
	login, err := login.NewLogin(login.LoginOptions{Store: w.app.store, Site: w.site, Passkey: cfg.passkeyConfig(), Issuer: cfg.Issuer,
		SessionKeys: cookieKeys(w.app.sessionKeys), IdleTimeout: cfg.Sessions.PupilIdle.D(), SessionLifetime: cfg.Sessions.PupilAbsolute.D(),
		Access: w.access, Logger: w.app.log})
	if err != nil {
		return err
	}
	enr.Mount(w.mux)
	login.Mount(w.mux)
	w.enroller, w.login = enr, login
	return nil
}
