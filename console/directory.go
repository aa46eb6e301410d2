package console

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/elevid/elevid/school"
	"github.com/elevid/elevid/school/rostersync"
	"github.com/elevid/elevid/web"
)

// DirectoryForm is what the directory settings form holds. The bind
// password is never shown: an empty field keeps the stored one.
type DirectoryForm struct {
	URL, BindDN, Preset, CAPEM                              string
	StartTLS, Insecure                                      bool
	PupilBase, PupilFilter, StaffBase, StaffFilter          string
	ClassBase, ClassFilter, GuardianBase, GuardianFilter    string
	PageSize, MaxDeletePercent, MaxDeletions, IntervalHours string
	HasPassword                                             bool
}

// DirectoryData is the data of the console-directory page.
type DirectoryData struct {
	Frame
	Form       DirectoryForm
	Errors     map[string]string
	Problem    string // a problem not tied to one field
	Saved      bool
	Test       string // result of a connection test
	TestOK     bool
	Reauthed   bool // re-authenticated recently: saving is possible
	ReauthLink string
}

func formOf(src school.DirectorySource) DirectoryForm {
	src = src.WithDefaults()
	return DirectoryForm{URL: src.URL, BindDN: src.BindDN, Preset: src.Preset, CAPEM: src.CAPEM, StartTLS: src.StartTLS, Insecure: src.Insecure,
		PupilBase: src.PupilBase, PupilFilter: src.PupilFilter, StaffBase: src.StaffBase, StaffFilter: src.StaffFilter,
		ClassBase: src.ClassBase, ClassFilter: src.ClassFilter, GuardianBase: src.GuardianBase, GuardianFilter: src.GuardianFilter,
		PageSize: strconv.Itoa(src.PageSize), MaxDeletePercent: strconv.Itoa(src.MaxDeletePercent), MaxDeletions: strconv.Itoa(src.MaxDeletions),
		IntervalHours: strconv.FormatFloat(src.Interval.Hours(), 'f', -1, 64), HasPassword: len(src.BindPassword) > 0}
}

func (c *Console) directoryData(ctx context.Context, p Principal, s school.School) (DirectoryData, school.DirectorySource, error) {
	data := DirectoryData{Frame: Frame{Me: p, School: s}, ReauthLink: "/console/reauth?return=" + url.QueryEscape("/console/schools/"+s.ID+"/directory")}
	src, err := c.opt.Store.GetDirectorySource(ctx, s.ID)
	if errors.Is(err, school.ErrNotFound) {
		src, err = school.DirectorySource{SchoolID: s.ID}, nil
	}
	if err != nil {
		return data, src, err
	}
	data.Form = formOf(src)
	data.Reauthed, err = c.recentlyReauthenticated(ctx, p)
	return data, src, err
}

func (c *Console) directoryPage(w http.ResponseWriter, r *http.Request, p Principal) {
	s, err := c.schoolFor(r, p, ManageDirectory)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data, _, err := c.directoryData(r.Context(), p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data.Saved = r.URL.Query().Get("saved") == "1"
	c.opt.Site.Render(w, r, http.StatusOK, "console-directory", data)
}

func (c *Console) directorySave(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, ManageDirectory)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data, old, err := c.directoryData(ctx, p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	lang := web.Lang(r)
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	f := DirectoryForm{URL: v("url"), BindDN: v("bind_dn"), Preset: v("preset"), CAPEM: v("ca_pem"), StartTLS: v("starttls") == "on", Insecure: v("insecure") == "on",
		PupilBase: v("pupil_base"), PupilFilter: v("pupil_filter"), StaffBase: v("staff_base"), StaffFilter: v("staff_filter"),
		ClassBase: v("class_base"), ClassFilter: v("class_filter"), GuardianBase: v("guardian_base"), GuardianFilter: v("guardian_filter"),
		PageSize: v("page_size"), MaxDeletePercent: v("max_delete_percent"), MaxDeletions: v("max_deletions"), IntervalHours: v("interval_hours"),
		HasPassword: len(old.BindPassword) > 0}
	data.Form = f
	data.Errors = map[string]string{}
	fieldErr := func(k, key string) { data.Errors[k] = c.opt.Site.T(lang, key) }
	src := old
	src.SchoolID, src.URL, src.BindDN, src.Preset, src.CAPEM, src.StartTLS, src.Insecure = s.ID, f.URL, f.BindDN, f.Preset, f.CAPEM, f.StartTLS, f.Insecure
	src.PupilBase, src.PupilFilter, src.StaffBase, src.StaffFilter = f.PupilBase, f.PupilFilter, f.StaffBase, f.StaffFilter
	src.ClassBase, src.ClassFilter, src.GuardianBase, src.GuardianFilter = f.ClassBase, f.ClassFilter, f.GuardianBase, f.GuardianFilter
	if u, err := url.Parse(f.URL); err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps") {
		fieldErr("url", "console.dir.bad_url")
	} else if u.Scheme == "ldaps" && f.StartTLS {
		fieldErr("starttls", "console.dir.starttls_ldaps")
	} else if plainLDAP(f.URL, f.StartTLS) && !f.Insecure {
		fieldErr("url", "console.dir.plain")
	}
	if f.PupilBase == "" {
		fieldErr("pupil_base", "console.dir.required")
	}
	if f.Preset != school.PresetOpenLDAP && f.Preset != school.PresetAD {
		fieldErr("preset", "console.dir.bad_preset")
	}
	num := func(k, val string, lo, hi int) int {
		n, err := strconv.Atoi(val)
		if err != nil || n < lo || n > hi {
			data.Errors[k] = c.opt.Site.T(lang, "console.dir.bad_number", lo, hi)
		}
		return n
	}
	src.PageSize = num("page_size", f.PageSize, 1, 5000)
	src.MaxDeletePercent = num("max_delete_percent", f.MaxDeletePercent, 1, 100)
	src.MaxDeletions = num("max_deletions", f.MaxDeletions, 1, 1000000)
	if h, err := strconv.ParseFloat(f.IntervalHours, 64); err != nil || h < 0 || h > 24*30 || (h > 0 && h < 1.0/60) {
		fieldErr("interval_hours", "console.dir.bad_interval")
	} else {
		src.Interval = time.Duration(h * float64(time.Hour))
	}
	pw := r.PostFormValue("bind_password")
	if pw != "" {
		src.BindPassword = c.opt.Sealer.Seal([]byte(pw), "ldap:"+s.ID)
	} else if len(old.BindPassword) > 0 && !sameEndpoint(old, f.URL, f.BindDN) {
		// The stored password never goes to another host or account.
		fieldErr("bind_password", "console.dir.password_again")
	}
	if len(data.Errors) == 0 {
		if err := rostersync.ValidateSource(src); err != nil {
			data.Problem = strings.TrimPrefix(err.Error(), school.ErrInvalid.Error()+": ")
		}
	}
	if len(data.Errors) > 0 || data.Problem != "" {
		c.opt.Site.Render(w, r, http.StatusBadRequest, "console-directory", data)
		return
	}
	// Directory credentials are the keys to the school's roster: changing
	// them needs a fresh password and TOTP code.
	if !data.Reauthed {
		data.Problem = c.opt.Site.T(lang, "console.reauth.needed")
		c.opt.Site.Render(w, r, http.StatusForbidden, "console-directory", data)
		return
	}
	err = c.opt.Store.InTx(ctx, func(q school.Queries) error {
		if _, err := q.PutDirectorySource(ctx, src); err != nil {
			return err
		}
		return c.audit(ctx, q, r, p, s.ID, "directory.update", s.ID, fmt.Sprintf(`{"password_changed":%t,"url_changed":%t,"insecure":%t}`, pw != "", old.URL != src.URL, src.Insecure))
	})
	if errors.Is(err, school.ErrInvalid) {
		data.Problem = strings.TrimPrefix(err.Error(), school.ErrInvalid.Error()+": ")
		c.opt.Site.Render(w, r, http.StatusBadRequest, "console-directory", data)
		return
	}
	if err != nil {
		c.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/schools/"+s.ID+"/directory?saved=1", http.StatusSeeOther)
}

// directoryTest tests a connection with what is on the form only: its
// URL, TLS settings, bind DN and password. The stored password is used
// only for the stored host and bind DN (an empty password field), never
// for another. The page says "could not connect" for any failure before
// the bind (no port or TLS detail: not a port scanner); the log has the
// detail.
func (c *Console) directoryTest(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, ManageDirectory)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	data, old, err := c.directoryData(ctx, p, s)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	lang := web.Lang(r)
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	src := school.DirectorySource{SchoolID: s.ID, URL: v("url"), BindDN: v("bind_dn"), CAPEM: v("ca_pem"),
		StartTLS: v("starttls") == "on", Insecure: v("insecure") == "on"}
	if src.URL == "" { // the button outside the form (older pages): the stored settings
		src.URL, src.BindDN, src.CAPEM, src.StartTLS, src.Insecure = old.URL, old.BindDN, old.CAPEM, old.StartTLS, old.Insecure
	}
	data.Form.URL, data.Form.BindDN, data.Form.CAPEM, data.Form.StartTLS, data.Form.Insecure = src.URL, src.BindDN, src.CAPEM, src.StartTLS, src.Insecure
	password := []byte(r.PostFormValue("bind_password"))
	fail := func(key string) {
		data.Test = c.opt.Site.T(lang, key)
		c.opt.Site.Render(w, r, http.StatusOK, "console-directory", data)
	}
	if u, err := url.Parse(src.URL); err != nil || u.Host == "" || (u.Scheme != "ldap" && u.Scheme != "ldaps") {
		fail("console.dir.bad_url")
		return
	}
	if plainLDAP(src.URL, src.StartTLS) && !src.Insecure {
		fail("console.dir.plain")
		return
	}
	if len(password) == 0 && src.BindDN != "" {
		if len(old.BindPassword) == 0 || !sameEndpoint(old, src.URL, src.BindDN) {
			fail("console.dir.password_again")
			return
		}
		if password, err = c.opt.Sealer.Open(old.BindPassword, "ldap:"+s.ID); err != nil {
			c.log.Error("console: stored bind password cannot be opened", "school", s.ID, "err", err)
			fail("console.dir.test_no_password")
			return
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if c.opt.Tester != nil {
		err = c.opt.Tester.TestConnection(tctx, src, password)
	} else {
		err = testConnection(tctx, src, password)
	}
	if err != nil {
		c.log.Info("console: directory connection test failed", "school", s.ID, "err", err)
		key := "console.dir.test_connect"
		if errors.Is(err, errBindRefused) {
			key = "console.dir.test_bind"
		}
		fail(key)
		return
	}
	data.Test, data.TestOK = c.opt.Site.T(lang, "console.dir.test_ok"), true
	c.opt.Site.Render(w, r, http.StatusOK, "console-directory", data)
}

// plainLDAP reports whether a URL and StartTLS setting make a connection
// without TLS.
func plainLDAP(rawURL string, startTLS bool) bool {
	return strings.HasPrefix(strings.ToLower(rawURL), "ldap://") && !startTLS
}

// sameEndpoint reports whether url and bindDN name the stored source's
// host (scheme, host and port) and account: only then may the stored
// password be kept or used.
func sameEndpoint(old school.DirectorySource, rawURL, bindDN string) bool {
	a, errA := url.Parse(old.URL)
	b, errB := url.Parse(rawURL)
	return errA == nil && errB == nil && old.URL != "" && strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Host, b.Host) && strings.EqualFold(strings.TrimSpace(old.BindDN), strings.TrimSpace(bindDN))
}

// errBindRefused marks a test whose connection worked but whose bind was
// refused.
var errBindRefused = errors.New("bind refused")

// testConnection connects to src's directory (StartTLS when set) and binds
// with password. Errors carry the detail for the log only.
func testConnection(ctx context.Context, src school.DirectorySource, password []byte) error {
	u, err := url.Parse(src.URL)
	if err != nil {
		return errors.New("the URL cannot be parsed")
	}
	tlsCfg := &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	if src.CAPEM != "" {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM([]byte(src.CAPEM)) {
			return errors.New("the CA bundle holds no certificate")
		}
		tlsCfg.RootCAs = pool
	}
	d := &net.Dialer{Timeout: 10 * time.Second}
	if dl, ok := ctx.Deadline(); ok {
		d.Deadline = dl
	}
	conn, err := ldap.DialURL(src.URL, ldap.DialWithDialer(d), ldap.DialWithTLSConfig(tlsCfg))
	if err != nil {
		return fmt.Errorf("connect to %s: %v", u.Host, err)
	}
	defer conn.Close()
	conn.SetTimeout(10 * time.Second)
	if src.StartTLS {
		if err := conn.StartTLS(tlsCfg); err != nil {
			return fmt.Errorf("StartTLS: %v", err)
		}
	}
	if src.BindDN == "" {
		return nil
	}
	if err := conn.Bind(src.BindDN, string(password)); err != nil {
		return fmt.Errorf("%w: bind as %s: %v", errBindRefused, src.BindDN, err)
	}
	return nil
}

// SyncData is the data of the console-sync page and of a run's page.
type SyncData struct {
	Frame
	Runs        []school.SyncRun
	Run         *school.SyncRun
	Changes     []rostersync.Change
	Error       string
	Tripped     bool // the deletion threshold stopped the run
	Unavailable bool
}

func (c *Console) syncPage(w http.ResponseWriter, r *http.Request, p Principal) {
	s, err := c.schoolFor(r, p, RunSync)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	runs, err := c.opt.Store.ListSyncRuns(r.Context(), s.ID, 30)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-sync", SyncData{Frame: Frame{Me: p, School: s}, Runs: runs, Unavailable: c.opt.Syncer == nil})
}

func (c *Console) syncRun(w http.ResponseWriter, r *http.Request, p Principal) {
	ctx := r.Context()
	s, err := c.schoolFor(r, p, RunSync)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if c.opt.Syncer == nil {
		c.opt.Site.Error(w, r, http.StatusServiceUnavailable, "console.err.no_syncer")
		return
	}
	mode := r.PostFormValue("mode")
	ro := rostersync.RunOptions{}
	switch mode {
	case "dry":
		ro.DryRun = true
	case "apply":
	case "force":
		// Applying past the deletion threshold can quarantine many
		// pupils at once: it needs a fresh password and TOTP code.
		ok, err := c.recentlyReauthenticated(ctx, p)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if !ok {
			c.needReauth(w, r, "/console/schools/"+s.ID+"/sync?confirm=force")
			return
		}
		ro.Force = true
	default:
		c.opt.Site.Error(w, r, http.StatusBadRequest, "error.bad_request")
		return
	}
	if err := c.audit(ctx, nil, r, p, s.ID, "sync.start", s.ID, fmt.Sprintf(`{"dry_run":%t,"forced":%t}`, ro.DryRun, ro.Force)); err != nil {
		c.fail(w, r, err)
		return
	}
	res, runErr := c.opt.Syncer.Run(ctx, s.ID, ro)
	data := SyncData{Frame: Frame{Me: p, School: s}, Changes: res.Changes}
	if res.Run.ID != "" {
		data.Run = &res.Run
	}
	if runErr != nil {
		data.Error = runErr.Error()
		data.Tripped = errors.Is(runErr, rostersync.ErrThreshold)
		if errors.Is(runErr, rostersync.ErrBusy) || errors.Is(runErr, rostersync.ErrNoSource) {
			data.Error = c.opt.Site.T(web.Lang(r), map[bool]string{true: "console.sync.busy", false: "console.sync.no_source"}[errors.Is(runErr, rostersync.ErrBusy)])
		}
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-syncrun", data)
}

func (c *Console) syncRunPage(w http.ResponseWriter, r *http.Request, p Principal) {
	s, err := c.schoolFor(r, p, RunSync)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	run, err := c.opt.Store.GetSyncRun(r.Context(), r.PathValue("run"))
	if err != nil {
		c.fail(w, r, err)
		return
	}
	if run.SchoolID != s.ID {
		c.fail(w, r, ErrHidden)
		return
	}
	c.opt.Site.Render(w, r, http.StatusOK, "console-syncrun", SyncData{Frame: Frame{Me: p, School: s}, Run: &run, Tripped: run.Status == school.SyncAbortedThreshold})
}
