package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/elevid/elevid/console"
	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

// mountConsole mounts the staff console at /console. It uses the
// enrolment flows and the consent service of mountConsent (which must run
// first) for codes, class starts and passkey resets, and its own roster
// Syncer for sync runs (runs of one school exclude each other through the
// store's lock, whoever starts them).
func mountConsole(w *wiring) error {
	cfg := w.app.cfg
	opt := console.Options{
		Store: w.app.store, Site: w.site, Sealer: w.app.sealer, Issuer: cfg.Issuer, Logger: w.app.log,
		IdleTimeout: cfg.Sessions.StaffIdle.D(), Lifetime: cfg.Sessions.StaffAbsolute.D(), SessionKeys: cookieKeys(w.app.sessionKeys),
		Syncer: w.syncer, Passkey: cfg.passkeyConfig(),
	}
	if w.flows != nil {
		opt.Enroller, opt.Starter = w.flows, w.flows
	}
	if w.consent != nil {
		opt.Resetter = w.consent
		opt.Platforms = w.consent
	}
	c, err := console.New(opt)
	if err != nil {
		return err
	}
	c.Mount(w.mux)
	w.background = append(w.background, func(ctx context.Context) {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if _, err := w.app.store.PurgeSheets(ctx, time.Now()); err != nil {
					w.app.log.Warn("console: purging expired sheets", "err", err)
				}
			}
		}
	})
	return nil
}

// Demo credentials of the demo teacher "laerer": fixed, so that a
// newcomer can add the TOTP secret to an authenticator app once.
const (
	demoTeacherPassword = "laerer-demo-2026"
	demoTeacherTOTP     = "ELEVIDDEMOLAERERZQ7XK4PAMBSWY3DP" // base32, 20 bytes
)

// refuseDemoTeacher fails when the demo teacher still signs in with the
// password the demo publishes: a database that once ran --demo must not
// serve an https (public) instance with it.
func refuseDemoTeacher(ctx context.Context, a *app) error {
	st, err := a.store.StaffByUsername(ctx, "laerer")
	if errors.Is(err, school.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if st.PasswordHash != "" && !st.Disabled && console.VerifyPassword(st.PasswordHash, demoTeacherPassword) {
		return fmt.Errorf("the staff account %q signs in with the demo's published password: this database was used with --demo; "+
			"change the password or disable the account (elevid admin staff …) before serving on an https issuer", st.Username)
	}
	return nil
}

// demoConsole gives the demo teacher a password and TOTP secret, records
// for two of the demo pupils a guardian's consent to the demo platform
// (the other two are left for the consent flow to show), and prints how
// to sign in.
func demoConsole(ctx context.Context, a *app, out io.Writer, s school.School, platform school.Platform) error {
	st, err := a.store.StaffByUsername(ctx, "laerer")
	if err != nil {
		return fmt.Errorf("demo teacher: %w", err)
	}
	key, err := console.TOTPKeyFromSecret(st.Username, demoTeacherTOTP)
	if err != nil {
		return err
	}
	if st.PasswordHash == "" || len(st.TOTPSecret) == 0 {
		if err := console.SetCredentials(ctx, a.store, a.sealer, console.DefaultArgon2, st.ID, "system", &console.Credentials{Password: demoTeacherPassword, TOTP: key}); err != nil {
			return err
		}
	}
	// Demoskolen uses the demo platform.
	if _, err := a.store.SetPlatformActivation(ctx, school.PlatformActivation{SchoolID: s.ID, PlatformID: platform.ID, ActivatedBy: "demo"}, true); err != nil {
		return fmt.Errorf("demo platform activation: %w", err)
	}
	pupils, err := a.store.ListPupils(ctx, school.PupilFilter{SchoolID: s.ID})
	if err != nil {
		return err
	}
	for _, p := range pupils {
		if p.ExternalID != "demo-p1" && p.ExternalID != "demo-p2" {
			continue
		}
		if _, err := a.store.GetEnrolment(ctx, p.ID); !errors.Is(err, school.ErrNotFound) {
			continue // the flow exists (or the store failed): leave it
		}
		// Demo data: the guardian's consent to the demo platform is recorded
		// by the seeding (and audited as such), not given through the mail.
		err := a.store.InTx(ctx, func(q school.Queries) error {
			if _, err := q.PutEnrolment(ctx, school.Enrolment{PupilID: p.ID, SchoolID: s.ID, State: school.EnrolmentConsented, Rule: school.ConsentAny, StartedBy: "demo"}); err != nil {
				return err
			}
			for _, g := range p.GuardianIDs {
				if _, err := q.SetConsent(ctx, school.Consent{PupilID: p.ID, GuardianID: g, PlatformID: platform.ID, Decision: school.DecisionGranted, DecidedAt: time.Now()}); err != nil {
					return err
				}
			}
			_, err := q.AppendAudit(ctx, school.AuditEntry{SchoolID: s.ID, ActorID: "system", ActorRole: "system", Action: "demo.consent", SubjectID: p.ID,
				Detail: "demo data: consent to the demo platform recorded by the seeding"})
			return err
		})
		if err != nil {
			return err
		}
	}
	code, _ := console.TOTPCode(demoTeacherTOTP, time.Now())
	fmt.Fprintf(out, `Demo teacher sign-in at %s/console:
  username:    laerer
  password:    %s
  TOTP secret: %s  (add it to an authenticator app, or use the URL below)
  TOTP URL:    %s
  code now:    %s (changes every 30 s; each code works once)
`, a.cfg.Issuer, demoTeacherPassword, demoTeacherTOTP, key.URL(), code)
	return nil
}

// refusingRequester is the consent requester of CLI commands that only
// issue codes for pupils whose consent is in place.
type refusingRequester struct{}

func (refusingRequester) RequestConsent(context.Context, school.Queries, enrolment.ConsentRequest) error {
	return errors.New("consent requests are sent by the running service (console or serve), not this command")
}

// cliFlows returns enrolment flows for CLI commands.
func cliFlows(a *app) (*enrolment.Flows, error) {
	cfg := a.cfg
	return enrolment.NewFlows(enrolment.FlowOptions{Store: a.store, Sealer: a.sealer, Requester: refusingRequester{}, Logger: a.log,
		ConsentTTL: cfg.Enrolment.ConsentLinkTTL.D(), CodeTTL: cfg.Enrolment.CodeTTL.D(),
		Policy: enrolment.Policy{MinAge: cfg.Policy.MinAge, MaxAge: cfg.Policy.MaxAge, OutsideRange: cfg.Policy.OutsideRange,
			ConsentRequiredUnder: cfg.Policy.ConsentRequiredUnder, Guardians: cfg.Policy.Guardians}})
}
