package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/elevid/elevid/web"
)

// Config is ElevID's configuration: one YAML file, decoded strictly, with
// ELEVID_* environment variables overriding secrets and the database DSN.
// Every field has a default that suits a local start, so no file is needed.
type Config struct {
	Listen    string          `yaml:"listen"`
	Issuer    string          `yaml:"issuer"`
	Database  string          `yaml:"database"` // SQLite file path, or a postgres:// DSN
	Log       LogConfig       `yaml:"log"`
	Secrets   SecretsConfig   `yaml:"secrets"`
	WebAuthn  WebAuthnConfig  `yaml:"webauthn"`
	Sessions  SessionsConfig  `yaml:"sessions"`
	Enrolment EnrolmentConfig `yaml:"enrolment"`
	Policy    PolicyConfig    `yaml:"policy"`
	SMTP      SMTPConfig      `yaml:"smtp"`
	Server    ServerConfig    `yaml:"server"`
	Privacy   PrivacyConfig   `yaml:"privacy"`
	Retention RetentionConfig `yaml:"retention"`
	// GuardianVerification is optional upstream verification of
	// guardians on the consent page; off while Issuer is empty.
	GuardianVerification GuardianVerificationConfig `yaml:"guardian_verification"`
}

// GuardianVerificationConfig names an external OpenID provider (e.g. a
// national eID broker such as MitID) at which guardians verify their
// identity before they consent; the consent then records the verified
// identity. Register ISSUER/consent/verified as the redirect URI there.
type GuardianVerificationConfig struct {
	Name         string   `yaml:"name"`   // shown on the button ("Verify with …"); default: the issuer's host
	Issuer       string   `yaml:"issuer"` // empty: verification off
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"` // env: ELEVID_GUARDIAN_OIDC_SECRET
	Scopes       []string `yaml:"scopes"`        // "openid" is always requested
	Required     bool     `yaml:"required"`      // refuse consent decisions without verification
	TTL          Duration `yaml:"ttl"`           // from start to callback, and callback to decision; default 15m
}

// PrivacyConfig names the data controller in the privacy notice.
type PrivacyConfig struct {
	Controller string `yaml:"controller"` // e.g. "Demokommune, Børne- og Ungeforvaltningen"; default: each school
	Contact    string `yaml:"contact"`
	DPO        string `yaml:"dpo"`
}

// RetentionConfig says how long records are kept before the retention job
// (run by serve, one node at a time) deletes them.
type RetentionConfig struct {
	ReleaseLog    Duration `yaml:"release_log"`    // default 730d
	AccessLog     Duration `yaml:"access_log"`     // default 730d
	RemovedPupils Duration `yaml:"removed_pupils"` // after the quarantine grace; default 30d
	ExpiredFlows  Duration `yaml:"expired_flows"`  // default 90d
	Interval      Duration `yaml:"interval"`       // how often the job runs; default 1h
}

// LogConfig chooses the log format and level.
type LogConfig struct {
	Format string `yaml:"format"` // text | json
	Level  string `yaml:"level"`  // debug | info | warn | error
}

// SecretsConfig holds base64-encoded secrets of at least 32 bytes each.
// Left empty on a local (http) instance, they are generated once and kept
// in the database; an https instance must set them.
type SecretsConfig struct {
	// SessionKeys sign and encrypt session cookies: the first is used, the
	// rest still accepted (rotation). Env: ELEVID_SESSION_KEYS (comma-separated).
	SessionKeys []string `yaml:"session_keys"`
	// EncryptionKeys seal secrets at rest (signing keys, directory
	// passwords, TOTP secrets); first seals, all open. Env: ELEVID_ENCRYPTION_KEYS.
	EncryptionKeys []string `yaml:"encryption_keys"`
	// PairwiseSecret derives pairwise subject identifiers; never change it.
	// Env: ELEVID_PAIRWISE_SECRET.
	PairwiseSecret string `yaml:"pairwise_secret"`
}

// WebAuthnConfig is the passkey relying party.
type WebAuthnConfig struct {
	RPID    string   `yaml:"rp_id"`   // default: the issuer's host
	RPName  string   `yaml:"rp_name"` // default: ElevID
	Origins []string `yaml:"origins"` // default: the issuer's origin
	Timeout Duration `yaml:"timeout"` // ceremony timeout; default 5m
}

// SessionsConfig bounds browser sessions.
type SessionsConfig struct {
	PupilIdle     Duration `yaml:"pupil_idle"`     // default 2h
	PupilAbsolute Duration `yaml:"pupil_absolute"` // default 12h
	StaffIdle     Duration `yaml:"staff_idle"`     // default 30m
	StaffAbsolute Duration `yaml:"staff_absolute"` // default 8h
}

// EnrolmentConfig governs enrolment codes and consent links.
type EnrolmentConfig struct {
	CodeTTL        Duration `yaml:"code_ttl"`         // default 7 days
	ConsentLinkTTL Duration `yaml:"consent_link_ttl"` // default 7 days
}

// PolicyConfig is the instance's age and consent policy.
type PolicyConfig struct {
	MinAge               int    `yaml:"min_age"`                // default 12
	MaxAge               int    `yaml:"max_age"`                // default 15
	OutsideRange         string `yaml:"outside_range"`          // allow | deny; default deny
	ConsentRequiredUnder int    `yaml:"consent_required_under"` // default 15
	Guardians            string `yaml:"guardians"`              // any | all; default any
}

// SMTPConfig is the outgoing mail server; empty Host keeps mail in the
// outbox (visible in the console) without sending.
type SMTPConfig struct {
	Host     string `yaml:"host"`
	Port     int    `yaml:"port"` // default 587
	TLS      string `yaml:"tls"`  // starttls | implicit | none; default starttls
	Username string `yaml:"username"`
	Password string `yaml:"password"` // env: ELEVID_SMTP_PASSWORD
	From     string `yaml:"from"`
}

// ServerConfig holds HTTP server limits.
type ServerConfig struct {
	ReadTimeout  Duration `yaml:"read_timeout"`   // default 15s
	WriteTimeout Duration `yaml:"write_timeout"`  // default 30s
	IdleTimeout  Duration `yaml:"idle_timeout"`   // default 2m
	MaxBodyBytes int64    `yaml:"max_body_bytes"` // default 1 MiB
	// MetricsListen is the host:port of the separate /metrics listener
	// (default 127.0.0.1:9090, loopback only); empty disables it. The main
	// listener never serves /metrics.
	MetricsListen string `yaml:"metrics_listen"`
	// MetricsToken, when set, is required as `Authorization: Bearer TOKEN`
	// on /metrics; it must be set when MetricsListen is not loopback.
	MetricsToken string `yaml:"metrics_token"`
	// TLS makes serve terminate TLS itself (see tls.go); empty: plain http.
	TLS TLSConfig `yaml:"tls"`
	// HTTPRedirectListen (e.g. "0.0.0.0:80"), with TLS, redirects http to the
	// issuer and answers ACME HTTP-01 challenges.
	HTTPRedirectListen string `yaml:"http_redirect_listen"`
	// TimeZone is where pages show times (an IANA name); default
	// Europe/Copenhagen.
	TimeZone string `yaml:"time_zone"`
	// TrustedProxies are the reverse proxies (CIDRs or addresses) whose
	// X-Forwarded-For / Forwarded headers name the client; empty: none,
	// the connection's address is the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
}

// Location is the configured time zone (valid after Validate).
func (c Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Server.TimeZone)
	if err != nil || c.Server.TimeZone == "" {
		loc, _ = time.LoadLocation(web.DefaultTimeZone)
	}
	return loc
}

// Proxies are the trusted proxies as prefixes (valid after Validate).
func (c Config) Proxies() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range c.Server.TrustedProxies {
		if p, err := web.ParseProxy(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Duration is a time.Duration written as "90s", "2h" or "7d" in YAML.
type Duration time.Duration

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML implements yaml.Marshaler.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil {
			return 0, fmt.Errorf("bad duration %q", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("bad duration %q (use e.g. 90s, 2h, 7d)", s)
	}
	return v, nil
}

// DefaultConfig returns the configuration of a local start.
func DefaultConfig() Config {
	return Config{
		Listen:   "127.0.0.1:8080",
		Issuer:   "http://localhost:8080",
		Database: "elevid.db",
		Log:      LogConfig{Format: "text", Level: "info"},
		WebAuthn: WebAuthnConfig{RPName: "ElevID", Timeout: Duration(5 * time.Minute)},
		Sessions: SessionsConfig{
			PupilIdle: Duration(2 * time.Hour), PupilAbsolute: Duration(12 * time.Hour),
			StaffIdle: Duration(30 * time.Minute), StaffAbsolute: Duration(8 * time.Hour),
		},
		Enrolment: EnrolmentConfig{CodeTTL: Duration(7 * 24 * time.Hour), ConsentLinkTTL: Duration(7 * 24 * time.Hour)},
		Policy:    PolicyConfig{MinAge: 12, MaxAge: 15, OutsideRange: "deny", ConsentRequiredUnder: 15, Guardians: "any"},
		SMTP:      SMTPConfig{Port: 587, TLS: "starttls"},
		Retention: RetentionConfig{
			ReleaseLog: Duration(730 * 24 * time.Hour), AccessLog: Duration(730 * 24 * time.Hour),
			RemovedPupils: Duration(30 * 24 * time.Hour), ExpiredFlows: Duration(90 * 24 * time.Hour), Interval: Duration(time.Hour),
		},
		GuardianVerification: GuardianVerificationConfig{TTL: Duration(15 * time.Minute)},
		Server: ServerConfig{
			ReadTimeout: Duration(15 * time.Second), WriteTimeout: Duration(30 * time.Second),
			IdleTimeout: Duration(2 * time.Minute), MaxBodyBytes: 1 << 20,
			MetricsListen: "127.0.0.1:9090",
			TimeZone:      web.DefaultTimeZone,
		},
	}
}

// LoadConfig reads path (none when empty) over the defaults, applies the
// environment (getenv) and fills derived defaults. It returns a decoding
// error for unknown keys or bad values; call Validate for the rest.
func LoadConfig(path string, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	env := func(name string, dst *string) {
		if v := getenv(name); v != "" {
			*dst = v
		}
	}
	list := func(name string, dst *[]string) {
		if v := getenv(name); v != "" {
			*dst = strings.Split(v, ",")
		}
	}
	env("ELEVID_LISTEN", &cfg.Listen)
	env("ELEVID_METRICS_LISTEN", &cfg.Server.MetricsListen)
	env("ELEVID_METRICS_TOKEN", &cfg.Server.MetricsToken)
	env("ELEVID_ISSUER", &cfg.Issuer)
	env("ELEVID_DATABASE", &cfg.Database)
	env("ELEVID_LOG_LEVEL", &cfg.Log.Level)
	env("ELEVID_PAIRWISE_SECRET", &cfg.Secrets.PairwiseSecret)
	env("ELEVID_SMTP_PASSWORD", &cfg.SMTP.Password)
	env("ELEVID_GUARDIAN_OIDC_SECRET", &cfg.GuardianVerification.ClientSecret)
	list("ELEVID_SESSION_KEYS", &cfg.Secrets.SessionKeys)
	list("ELEVID_ENCRYPTION_KEYS", &cfg.Secrets.EncryptionKeys)
	if u, err := url.Parse(cfg.Issuer); err == nil {
		if cfg.WebAuthn.RPID == "" {
			cfg.WebAuthn.RPID = u.Hostname()
		}
		if len(cfg.WebAuthn.Origins) == 0 && u.Host != "" {
			cfg.WebAuthn.Origins = []string{u.Scheme + "://" + u.Host}
		}
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if gv := &cfg.GuardianVerification; gv.Issuer != "" && gv.Name == "" {
		if u, err := url.Parse(gv.Issuer); err == nil {
			gv.Name = u.Hostname()
		}
	}
	return cfg, nil
}

// Postgres reports whether the database is a PostgreSQL DSN.
func (c Config) Postgres() bool {
	return strings.HasPrefix(c.Database, "postgres://") || strings.HasPrefix(c.Database, "postgresql://")
}

// Secure reports whether the issuer is https.
func (c Config) Secure() bool { return strings.HasPrefix(c.Issuer, "https://") }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactDSN hides a password in a DSN for messages and logs.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}
