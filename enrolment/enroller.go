package enrolment

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/elevid/elevid/idp/passkey"
	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/web"
)

// Options configure an Enroller.
type Options struct {
	Store school.Store
	// Sealer keys the stored form of enrolment codes (Hash); required.
	Sealer  *school.Sealer
	Site    *web.Site
	Passkey passkey.Config
	// CodeTTL is how long an enrolment code is valid; 7 days when zero.
	CodeTTL time.Duration
	// Wrong codes are counted within WrongCodeWindow (15 minutes) per
	// client address (MaxWrongCodes, 100: a class of 30 behind one school
	// address never gets there by typos), per code aimed at (MaxWrongPerCode,
	// 10) and per class of that code's pupil (MaxWrongPerClass, 60: the
	// codes printed together on one class sheet). Past a limit the client,
	// the code or the class's codes are refused for the rest of the window.
	// Used, expired and replaced codes are real codes, not guesses: they
	// count against nothing.
	MaxWrongCodes    int
	MaxWrongPerCode  int
	MaxWrongPerClass int
	WrongCodeWindow  time.Duration
	// ClientIP names the client for rate limits; web.ClientIP (the one
	// place that knows the trusted proxies) when nil.
	ClientIP func(*http.Request) string
	Now      func() time.Time
	Logger   *slog.Logger
}

// Enroller issues enrolment codes and serves passkey registration at
// /enrol. It keeps no state in memory: codes, ceremonies and rate counters
// live in the Store, so any node can serve any step.
type Enroller struct {
	opt Options
	rp  *passkey.RelyingParty
	log *slog.Logger
}

// New returns an Enroller for opt.
func New(opt Options) (*Enroller, error) {
	if opt.Store == nil || opt.Site == nil || opt.Sealer == nil {
		return nil, errors.New("enrolment: a store, a sealer and a site are required")
	}
	if opt.CodeTTL <= 0 {
		opt.CodeTTL = 7 * 24 * time.Hour
	}
	if opt.MaxWrongCodes <= 0 {
		opt.MaxWrongCodes = 100
	}
	if opt.MaxWrongPerCode <= 0 {
		opt.MaxWrongPerCode = 10
	}
	if opt.MaxWrongPerClass <= 0 {
		opt.MaxWrongPerClass = 60
	}
	if opt.WrongCodeWindow <= 0 {
		opt.WrongCodeWindow = 15 * time.Minute
	}
	if opt.ClientIP == nil {
		opt.ClientIP = web.ClientIP
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	rp, err := passkey.NewRelyingParty(opt.Passkey, opt.Store, opt.Now)
	if err != nil {
		return nil, err
	}
	return &Enroller{opt: opt, rp: rp, log: opt.Logger}, nil
}

func (e *Enroller) now() time.Time { return e.opt.Now() }

// Mount registers the enrolment routes on mux:
//
//	GET  /enrol          code form (?code= prefills it, for QR codes)
//	POST /enrol          check the code, show whose it is
//	POST /enrol/begin    JSON: start the WebAuthn registration
//	POST /enrol/finish   JSON: verify and store the passkey, use the code
//	GET  /enrol/done     success page
func (e *Enroller) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /enrol", e.form)
	mux.HandleFunc("POST /enrol", e.confirm)
	mux.HandleFunc("POST /enrol/begin", e.begin)
	mux.HandleFunc("POST /enrol/finish", e.finish)
	mux.HandleFunc("GET /enrol/done", e.done)
}

// FormData is the data of the enrol page.
type FormData struct {
	Code  string
	Error string
}

// ConfirmData is the data of the enrol-confirm page.
type ConfirmData struct {
	Code       string
	GivenName  string
	SchoolName string
}

func (e *Enroller) form(w http.ResponseWriter, r *http.Request) {
	code := r.URL.Query().Get("code")
	if len(code) > 40 {
		code = ""
	}
	noStore(w)
	e.opt.Site.Render(w, r, http.StatusOK, "enrol", FormData{Code: code})
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
}

// codeProblem is why a code was refused: a status and a text key.
type codeProblem struct {
	status int
	key    string
}

func (p *codeProblem) Error() string { return p.key }

// checked is a usable code with its pupil and school.
type checked struct {
	code   school.EnrolmentCode
	pupil  school.Pupil
	school school.School
}

// check validates a typed code under the rate limits (see Options): a
// wrong code counts against the client and against every live code (and
// its classes) whose locator it starts with.
func (e *Enroller) check(ctx context.Context, r *http.Request, raw string) (checked, error) {
	var c checked
	st := e.opt.Store
	win := e.opt.WrongCodeWindow
	limited := func(what string, n int) (checked, error) {
		e.log.Warn("enrol: code attempts blocked by rate limit", "limit", what, "attempts", n)
		return c, &codeProblem{http.StatusTooManyRequests, "enrol.err.rate"}
	}
	clientKey := "enrol-code:" + e.opt.ClientIP(r)
	if n, err := st.RateCount(ctx, clientKey, win); err != nil {
		return c, err
	} else if n >= e.opt.MaxWrongCodes {
		return limited("client", n)
	}
	norm, ok := Normalize(raw)
	var keys []rateKey // what a wrong attempt counts against
	keys = append(keys, rateKey{clientKey, e.opt.MaxWrongCodes})
	if ok {
		live, err := st.LiveEnrolmentCodes(ctx, Locator(norm))
		if err != nil {
			return c, err
		}
		for _, lc := range live {
			keys = append(keys, rateKey{"enrol-code-target:" + hex.EncodeToString(lc.Hash[:12]), e.opt.MaxWrongPerCode})
			p, err := st.GetPupil(ctx, lc.PupilID)
			if err != nil && !errors.Is(err, school.ErrNotFound) {
				return c, err
			}
			for _, cl := range p.ClassIDs {
				keys = append(keys, rateKey{"enrol-code-class:" + cl, e.opt.MaxWrongPerClass})
			}
		}
		for _, k := range keys[1:] {
			if n, err := st.RateCount(ctx, k.key, win); err != nil {
				return c, err
			} else if n >= k.max {
				return limited(strings.SplitN(k.key, ":", 2)[0], n)
			}
		}
	}
	fail := func(textKey, reason string) (checked, error) {
		for _, k := range keys {
			if _, err := st.HitRate(ctx, k.key, win); err != nil {
				return c, err
			}
		}
		e.log.Info("enrol: code refused", "reason", reason, "counted", len(keys))
		return c, &codeProblem{http.StatusBadRequest, textKey}
	}
	if !ok {
		return fail("enrol.err.wrong", "malformed")
	}
	var err error
	c.code, err = codeByHash(ctx, st, e.opt.Sealer, norm)
	switch {
	case errors.Is(err, school.ErrNotFound):
		return fail("enrol.err.wrong", "unknown")
	case errors.Is(err, school.ErrUsed): // a real code, not a guess: not counted
		e.log.Info("enrol: code refused", "reason", "used")
		return c, &codeProblem{http.StatusBadRequest, "enrol.err.used"}
	case errors.Is(err, school.ErrExpired): // expired or replaced by a newer card
		e.log.Info("enrol: code refused", "reason", "expired")
		return c, &codeProblem{http.StatusBadRequest, "enrol.err.expired"}
	case err != nil:
		return c, err
	}
	if c.pupil, err = st.GetPupil(ctx, c.code.PupilID); err != nil {
		return c, err
	}
	allowed, err := st.EnrolmentAllowed(ctx, c.pupil.ID)
	if err != nil {
		return c, err
	}
	if c.pupil.Status != school.PupilActive || !allowed {
		e.log.Info("enrol: code of a pupil who may not enrol", "pupil", c.pupil.ID, "status", c.pupil.Status, "allowed", allowed)
		return c, &codeProblem{http.StatusForbidden, "enrol.err.not_allowed"}
	}
	if c.school, err = st.GetSchool(ctx, c.pupil.SchoolID); err != nil {
		return c, err
	}
	return c, nil
}

// rateKey is a rate counter and its limit.
type rateKey struct {
	key string
	max int
}

func (e *Enroller) confirm(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	raw := r.PostFormValue("code")
	c, err := e.check(r.Context(), r, raw)
	var p *codeProblem
	if errors.As(err, &p) {
		e.opt.Site.Render(w, r, p.status, "enrol", FormData{Code: raw, Error: e.opt.Site.T(web.Lang(r), p.key)})
		return
	}
	if err != nil {
		e.opt.Site.ServerError(w, r, err)
		return
	}
	norm, _ := Normalize(raw)
	e.opt.Site.Render(w, r, http.StatusOK, "enrol-confirm", ConfirmData{
		Code: Format(norm), GivenName: c.pupil.GivenName, SchoolName: c.school.Name,
	})
}

func (e *Enroller) begin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var body struct {
		Code string `json:"code"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4<<10)).Decode(&body); err != nil {
		e.opt.Site.JSONError(w, r, http.StatusBadRequest, "error.bad_request", nil)
		return
	}
	c, err := e.check(ctx, r, body.Code)
	var p *codeProblem
	if errors.As(err, &p) {
		e.opt.Site.JSONError(w, r, p.status, p.key, nil)
		return
	}
	if err != nil {
		e.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	begun, err := e.rp.BeginRegistration(ctx, registrant(c.pupil), school.CeremonyRegistration, c.code.Hash)
	if err != nil {
		e.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	passkey.WriteJSON(w, http.StatusOK, begun)
}

// registrationKeys are the messages of a refused registration.
var registrationKeys = passkey.Keys{Ceremony: "enrol.err.ceremony", Refused: "enrol.err.passkey"}

// registrant is the pupil as a passkey registrant.
func registrant(p school.Pupil) passkey.Registrant {
	return passkey.Registrant{Owner: school.PupilOwner(p.ID), SchoolID: p.SchoolID, Name: p.Name(), DisplayName: p.Name()}
}

func (e *Enroller) finish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	f, err := passkey.ReadFinish(r)
	if err != nil {
		e.log.Warn("enrol: bad finish request", "err", err)
		e.opt.Site.JSONError(w, r, http.StatusBadRequest, "error.bad_request", nil)
		return
	}
	lang := web.Lang(r)
	label := passkey.Label(f.Label, e.opt.Site.T(lang, "enrol.default_label", e.now().Format("2006-01-02")))
	var pupil school.Pupil
	// The ceremony is gone from here on, whatever the outcome.
	stored, cer, err := e.rp.FinishRegistration(ctx, f, school.CeremonyRegistration, func(cer school.Ceremony) (passkey.Registrant, error) {
		var err error
		if pupil, err = e.opt.Store.GetPupil(ctx, cer.SubjectID); err != nil {
			return passkey.Registrant{}, err
		}
		return registrant(pupil), nil
	}, label)
	if err != nil {
		status, key, detail := registrationKeys.Answer(err, http.StatusBadRequest, e.log, "enrol: registration refused", "pupil", cer.SubjectID)
		e.opt.Site.JSONError(w, r, status, key, detail)
		return
	}
	err = e.opt.Store.InTx(ctx, func(q school.Queries) error {
		code, err := q.ConsumeEnrolmentCode(ctx, cer.Ref)
		if err != nil {
			return err
		}
		if code.PupilID != pupil.ID {
			return fmt.Errorf("%w: code of another pupil", school.ErrInvalid)
		}
		if ok, err := q.EnrolmentAllowed(ctx, pupil.ID); err != nil || !ok {
			return errors.Join(err, fmt.Errorf("%w: enrolment not allowed", school.ErrInvalid))
		}
		if _, err := q.AddCredential(ctx, stored); err != nil {
			return err
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{
			SchoolID: pupil.SchoolID, Time: e.now(), ActorID: "pupil:" + pupil.ID, ActorRole: "pupil",
			Action: "passkey.register", SubjectID: pupil.ID, Remote: e.opt.ClientIP(r),
			Detail: fmt.Sprintf(`{"backup_eligible":%t}`, stored.BackupEligible),
		})
		return err
	})
	switch {
	case errors.Is(err, school.ErrUsed):
		e.log.Warn("enrol: code used by a concurrent registration", "pupil", pupil.ID)
		e.opt.Site.JSONError(w, r, http.StatusConflict, "enrol.err.used", nil)
		return
	case errors.Is(err, school.ErrExpired):
		e.opt.Site.JSONError(w, r, http.StatusBadRequest, "enrol.err.expired", nil)
		return
	case errors.Is(err, school.ErrNotFound):
		e.opt.Site.JSONError(w, r, http.StatusBadRequest, "enrol.err.wrong", nil)
		return
	case errors.Is(err, school.ErrConflict):
		e.log.Warn("enrol: credential id registered already", "pupil", pupil.ID)
		e.opt.Site.JSONError(w, r, http.StatusConflict, "enrol.err.exists", nil)
		return
	case errors.Is(err, school.ErrInvalid):
		e.log.Warn("enrol: registration refused", "pupil", pupil.ID, "err", err)
		e.opt.Site.JSONError(w, r, http.StatusForbidden, "enrol.err.not_allowed", nil)
		return
	case err != nil:
		e.opt.Site.JSONError(w, r, http.StatusInternalServerError, "error.internal", err)
		return
	}
	e.log.Info("enrol: passkey registered", "pupil", pupil.ID)
	passkey.WriteJSON(w, http.StatusOK, passkey.Result{OK: true, Next: "/enrol/done"})
}

func (e *Enroller) done(w http.ResponseWriter, r *http.Request) {
	e.opt.Site.Render(w, r, http.StatusOK, "enrol-done", nil)
}
