package main

import (
	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/guardian"
)

// mountConsent builds, in this order, the consent requests, the enrolment
// flows that send them, and the guardian's side on those flows: the
// consent and guardian pages, the pupil's /me/consents (once the pupil
// login is wired), and the outbox sender as a background job. It sets
// w.flows and w.consent for the staff console. Withdrawals and passkey
// resets end access through w.access.
func mountConsent(w *wiring) error {
	cfg := w.app.cfg
	sender := guardian.NewSender(guardian.SenderOptions{
		Store: w.app.store, Sealer: w.app.sealer, Logger: w.app.log,
		SMTP: guardian.SMTP{Host: cfg.SMTP.Host, Port: cfg.SMTP.Port, TLS: cfg.SMTP.TLS,
			Username: cfg.SMTP.Username, Password: cfg.SMTP.Password, From: cfg.SMTP.From},
	})
	var verification *guardian.Verification
	if gv := cfg.GuardianVerification; gv.Issuer != "" {
		verification = &guardian.Verification{Name: gv.Name, Issuer: gv.Issuer, ClientID: gv.ClientID, ClientSecret: gv.ClientSecret,
			Scopes: gv.Scopes, Required: gv.Required, TTL: gv.TTL.D()}
	}
	opt := guardian.Options{
		Store: w.app.store, Site: w.site, Sealer: w.app.sealer, BaseURL: cfg.Issuer, Logger: w.app.log,
		LinkTTL: cfg.Enrolment.ConsentLinkTTL.D(), Secure: cfg.Secure(), SessionKeys: cookieKeys(w.app.sessionKeys), Sender: sender,
		Verification: verification, Access: w.access,
	}
	requests, err := guardian.NewRequests(opt)
	if err != nil {
		return err
	}
	flows, err := enrolment.NewFlows(enrolment.FlowOptions{
		Store: w.app.store, Sealer: w.app.sealer, Requester: requests, Logger: w.app.log,
		ConsentTTL: cfg.Enrolment.ConsentLinkTTL.D(), CodeTTL: cfg.Enrolment.CodeTTL.D(),
		Policy: enrolment.Policy{MinAge: cfg.Policy.MinAge, MaxAge: cfg.Policy.MaxAge, OutsideRange: cfg.Policy.OutsideRange,
			ConsentRequiredUnder: cfg.Policy.ConsentRequiredUnder, Guardians: cfg.Policy.Guardians},
	})
	if err != nil {
		return err
	}
	opt.Flows = flows
	svc, err := guardian.New(opt)
	if err != nil {
		return err
	}
	svc.Mount(w.mux)
	svc.MountPupilPage(w.mux, w.login)
	w.flows, w.consent = flows, svc
	w.background = append(w.background, sender.Run)
	if cfg.SMTP.Host == "" {
		w.app.log.Warn("smtp.host is empty: consent mail stays in the outbox unsent")
	}
	return nil
}
