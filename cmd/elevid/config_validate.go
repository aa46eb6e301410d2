package main

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/elevid/elevid/web"
)

// Validate returns every problem with c at once, one per line, each naming
// its key path; nil when c is usable. Each step below checks one part of
// the file and adds what it finds.
func (c Config) Validate() error {
	var p problems
	c.validateListen(&p)
	local := c.validateIssuer(&p)
	c.validateWebAuthn(&p, local)
	c.validateStorage(&p)
	c.validateSecrets(&p)
	c.validateSessions(&p)
	c.validateEnrolment(&p)
	c.validateSMTP(&p)
	c.validateRetention(&p)
	c.validateServer(&p)
	c.validateGuardianVerification(&p)
	p = append(p, c.validateTLS()...)
	if len(p) == 0 {
		return nil
	}
	return &ConfigError{Problems: p}
}

// problems collects Validate's findings, each "key: message".
type problems []string

func (p *problems) add(key, format string, args ...any) {
	*p = append(*p, key+": "+fmt.Sprintf(format, args...))
}

// keyedDuration is a duration with its key path, for checks of several.
type keyedDuration struct {
	key string
	d   Duration
}

// validateListen checks listen: host:port with a host.
func (c Config) validateListen(p *problems) {
	if host, port, err := net.SplitHostPort(c.Listen); err != nil {
		p.add("listen", "%q is not host:port", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.add("listen", "bad port %q", port)
	} else if host == "" {
		p.add("listen", "give a host (e.g. 127.0.0.1:8080 or 0.0.0.0:8080)")
	}
}

// validateIssuer checks the issuer URL and that webauthn.rp_id fits its
// host; it reports whether the issuer's host is local (localhost).
func (c Config) validateIssuer(p *problems) (local bool) {
	u, err := url.Parse(c.Issuer)
	switch {
	case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
		p.add("issuer", "%q is not an absolute http(s) URL", c.Issuer)
	case u.RawQuery != "" || u.Fragment != "":
		p.add("issuer", "must not have a query or fragment")
	default:
		h := u.Hostname()
		local = h == "localhost" || h == "127.0.0.1" || h == "::1"
		if u.Scheme == "http" && !local {
			p.add("issuer", "must be https unless the host is localhost")
		}
		if c.WebAuthn.RPID != h && !strings.HasSuffix(h, "."+c.WebAuthn.RPID) {
			p.add("webauthn.rp_id", "%q must be the issuer's host %q or a parent domain of it", c.WebAuthn.RPID, h)
		}
	}
	return local
}

// validateWebAuthn checks the relying party id, the origins (https, or
// http on a local issuer) and the ceremony timeout.
func (c Config) validateWebAuthn(p *problems, local bool) {
	if net.ParseIP(c.WebAuthn.RPID) != nil {
		p.add("webauthn.rp_id", "cannot be an IP address (use localhost in development)")
	}
	for i, o := range c.WebAuthn.Origins {
		ou, err := url.Parse(o)
		if err != nil || ou.Host == "" || ou.Path != "" || (ou.Scheme != "https" && !(ou.Scheme == "http" && local)) {
			p.add(fmt.Sprintf("webauthn.origins[%d]", i), "%q is not an https origin", o)
		}
	}
	if c.WebAuthn.Timeout.D() < 30*time.Second || c.WebAuthn.Timeout.D() > 30*time.Minute {
		p.add("webauthn.timeout", "must be between 30s and 30m")
	}
}

// validateStorage checks the database (path or DSN) and the log settings.
func (c Config) validateStorage(p *problems) {
	if strings.TrimSpace(c.Database) == "" {
		p.add("database", "is empty (give a file path for SQLite or a postgres:// DSN)")
	} else if strings.Contains(c.Database, "://") && !c.Postgres() {
		p.add("database", "unknown scheme in %q (use a file path or postgres://)", redactDSN(c.Database))
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		p.add("log.format", "%q is not text or json", c.Log.Format)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		p.add("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
}

// validateSecrets checks that keys are base64 of at least 32 bytes and
// that an https issuer has all of them.
func (c Config) validateSecrets(p *problems) {
	checkKeys := func(key string, vals []string) {
		for i, v := range vals {
			if b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v)); err != nil || len(b) < 32 {
				p.add(fmt.Sprintf("%s[%d]", key, i), "must be base64 of at least 32 random bytes (openssl rand -base64 48)")
			}
		}
	}
	checkKeys("secrets.session_keys", c.Secrets.SessionKeys)
	checkKeys("secrets.encryption_keys", c.Secrets.EncryptionKeys)
	if c.Secrets.PairwiseSecret != "" {
		checkKeys("secrets.pairwise_secret", []string{c.Secrets.PairwiseSecret})
	}
	if c.Secure() {
		if len(c.Secrets.SessionKeys) == 0 {
			p.add("secrets.session_keys", "required for an https issuer (or ELEVID_SESSION_KEYS)")
		}
		if len(c.Secrets.EncryptionKeys) == 0 {
			p.add("secrets.encryption_keys", "required for an https issuer (or ELEVID_ENCRYPTION_KEYS)")
		}
		if c.Secrets.PairwiseSecret == "" {
			p.add("secrets.pairwise_secret", "required for an https issuer (or ELEVID_PAIRWISE_SECRET)")
		}
	}
}

// validateSessions checks the pupils' and staff's session lifetimes.
func (c Config) validateSessions(p *problems) {
	pos := func(key string, d Duration) {
		if d <= 0 {
			p.add(key, "must be positive")
		}
	}
	pos("sessions.pupil_idle", c.Sessions.PupilIdle)
	pos("sessions.pupil_absolute", c.Sessions.PupilAbsolute)
	pos("sessions.staff_idle", c.Sessions.StaffIdle)
	pos("sessions.staff_absolute", c.Sessions.StaffAbsolute)
	if c.Sessions.PupilIdle > c.Sessions.PupilAbsolute {
		p.add("sessions.pupil_idle", "must not exceed sessions.pupil_absolute")
	}
	if c.Sessions.StaffIdle > c.Sessions.StaffAbsolute {
		p.add("sessions.staff_idle", "must not exceed sessions.staff_absolute")
	}
	if c.Sessions.StaffAbsolute > c.Sessions.PupilAbsolute {
		p.add("sessions.staff_absolute", "staff sessions must not outlive pupils' (%s)", c.Sessions.PupilAbsolute.D())
	}
}

// validateEnrolment checks the code and consent link lifetimes and the age policy.
func (c Config) validateEnrolment(p *problems) {
	for _, k := range []keyedDuration{{"enrolment.code_ttl", c.Enrolment.CodeTTL}, {"enrolment.consent_link_ttl", c.Enrolment.ConsentLinkTTL}} {
		key, d := k.key, k.d
		if d.D() < time.Hour || d.D() > 60*24*time.Hour {
			p.add(key, "must be between 1h and 60d")
		}
	}
	if c.Policy.MinAge < 6 || c.Policy.MaxAge > 25 || c.Policy.MinAge > c.Policy.MaxAge {
		p.add("policy.min_age", "min_age %d and max_age %d must satisfy 6 ≤ min ≤ max ≤ 25", c.Policy.MinAge, c.Policy.MaxAge)
	}
	if !slices.Contains([]string{"allow", "deny"}, c.Policy.OutsideRange) {
		p.add("policy.outside_range", "%q is not allow or deny", c.Policy.OutsideRange)
	}
	if c.Policy.ConsentRequiredUnder < 13 || c.Policy.ConsentRequiredUnder > 18 {
		p.add("policy.consent_required_under", "must be between 13 and 18 (pupils under 13 always need consent)")
	}
	if !slices.Contains([]string{"any", "all"}, c.Policy.Guardians) {
		p.add("policy.guardians", "%q is not any or all", c.Policy.Guardians)
	}
}

// validateSMTP checks the mail server settings, when a host is set.
func (c Config) validateSMTP(p *problems) {
	if c.SMTP.Host != "" {
		if c.SMTP.Port < 1 || c.SMTP.Port > 65535 {
			p.add("smtp.port", "%d is not a port", c.SMTP.Port)
		}
		if !slices.Contains([]string{"starttls", "implicit", "none"}, c.SMTP.TLS) {
			p.add("smtp.tls", "%q is not starttls, implicit or none", c.SMTP.TLS)
		}
		if c.SMTP.From == "" || strings.ContainsAny(c.SMTP.From, "\r\n") || !strings.Contains(c.SMTP.From, "@") {
			p.add("smtp.from", "must be an e-mail address")
		}
		if c.SMTP.Username != "" && c.SMTP.TLS == "none" && !isLoopback(c.SMTP.Host) {
			p.add("smtp.tls", "refusing to send a password without TLS to %s", c.SMTP.Host)
		}
	}
}

// validateRetention checks the retention periods and the job's interval.
func (c Config) validateRetention(p *problems) {
	for _, k := range []keyedDuration{{"retention.release_log", c.Retention.ReleaseLog}, {"retention.access_log", c.Retention.AccessLog},
		{"retention.removed_pupils", c.Retention.RemovedPupils}, {"retention.expired_flows", c.Retention.ExpiredFlows}} {
		key, d := k.key, k.d
		if d.D() < 24*time.Hour || d.D() > 10*365*24*time.Hour {
			p.add(key, "must be between 1d and 3650d")
		}
	}
	if c.Retention.Interval.D() < time.Minute || c.Retention.Interval.D() > 24*time.Hour {
		p.add("retention.interval", "must be between 1m and 24h")
	}
}

// validateServer checks the HTTP server's limits, the metrics listener,
// the time zone and the trusted proxies.
func (c Config) validateServer(p *problems) {
	if c.Server.ReadTimeout <= 0 || c.Server.WriteTimeout <= 0 || c.Server.IdleTimeout <= 0 {
		p.add("server", "read_timeout, write_timeout and idle_timeout must be positive")
	}
	if ml := c.Server.MetricsListen; ml != "" {
		if host, port, err := net.SplitHostPort(ml); err != nil || port == "" {
			p.add("server.metrics_listen", "%q is not host:port", ml)
		} else if !isLoopback(host) && c.Server.MetricsToken == "" {
			p.add("server.metrics_listen", "%q is not a loopback address: set server.metrics_token too", ml)
		}
	}
	if t := c.Server.MetricsToken; t != "" && len(t) < 16 {
		p.add("server.metrics_token", "must have at least 16 characters")
	}
	if c.Server.MaxBodyBytes < 4096 || c.Server.MaxBodyBytes > 64<<20 {
		p.add("server.max_body_bytes", "must be between 4096 and 67108864")
	}
	if _, err := time.LoadLocation(c.Server.TimeZone); err != nil || c.Server.TimeZone == "" {
		p.add("server.time_zone", "%q is not a time zone name (such as Europe/Copenhagen)", c.Server.TimeZone)
	}
	for _, tp := range c.Server.TrustedProxies {
		if _, err := web.ParseProxy(tp); err != nil {
			p.add("server.trusted_proxies", "%q is not a CIDR or an IP address", tp)
		}
	}
}

// validateGuardianVerification checks the upstream OpenID provider that
// verifies guardians, when one is configured.
func (c Config) validateGuardianVerification(p *problems) {
	if gv := c.GuardianVerification; gv.Issuer != "" {
		if gu, err := url.Parse(gv.Issuer); err != nil || gu.Host == "" || gu.RawQuery != "" || gu.Fragment != "" ||
			(gu.Scheme != "https" && !(gu.Scheme == "http" && isLoopback(gu.Hostname()))) {
			p.add("guardian_verification.issuer", "%q is not an https URL", gv.Issuer)
		}
		if gv.ClientID == "" {
			p.add("guardian_verification.client_id", "is required with an issuer")
		}
		if gv.ClientSecret == "" {
			p.add("guardian_verification.client_secret", "is required with an issuer (or ELEVID_GUARDIAN_OIDC_SECRET)")
		}
		for i, sc := range gv.Scopes {
			if sc == "" || strings.ContainsAny(sc, " \t\r\n\"") {
				p.add(fmt.Sprintf("guardian_verification.scopes[%d]", i), "%q is not a scope", sc)
			}
		}
		if gv.TTL.D() < time.Minute || gv.TTL.D() > time.Hour {
			p.add("guardian_verification.ttl", "must be between 1m and 1h")
		}
	} else if gv.Required {
		p.add("guardian_verification.required", "needs guardian_verification.issuer")
	}
}

// ConfigError lists every problem found by Validate.
type ConfigError struct{ Problems []string }

func (e *ConfigError) Error() string {
	return fmt.Sprintf("invalid configuration (%d problems):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}
