package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "elevid.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func noEnv(string) string { return "" }

const key32 = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" // base64 of 32 bytes

func TestDefaultConfigIsValid(t *testing.T) {
	cfg, err := LoadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if cfg.Database != "elevid.db" || cfg.Listen != "127.0.0.1:8080" || cfg.Issuer != "http://localhost:8080" ||
		cfg.WebAuthn.RPID != "localhost" || cfg.WebAuthn.Origins[0] != "http://localhost:8080" {
		t.Fatalf("defaults = %+v", cfg)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // substrings that must all appear; empty means valid
	}{
		{name: "empty file", yaml: ""},
		{name: "durations in days", yaml: "enrolment:\n  code_ttl: 3d\n"},
		{name: "unknown key", yaml: "listen: 127.0.0.1:1\nlisen: x\n", want: []string{"field lisen not found"}},
		{name: "unknown nested key", yaml: "smtp:\n  hots: x\n", want: []string{"field hots not found"}},
		{name: "bad duration", yaml: "sessions:\n  pupil_idle: soon\n", want: []string{`bad duration "soon"`}},
		{
			name: "every problem at once",
			yaml: "listen: nope\nissuer: ftp://x\nlog:\n  format: xml\n  level: loud\nsessions:\n  pupil_idle: 24h\n  pupil_absolute: 1h\npolicy:\n  guardians: some\nsmtp:\n  host: mail.example.dk\n  from: x\n",
			want: []string{"listen:", "issuer:", "log.format:", "log.level:", "sessions.pupil_idle:", "policy.guardians:", "smtp.from:"},
		},
		{
			name: "https needs secrets",
			yaml: "issuer: https://id.example.dk\n",
			want: []string{"secrets.session_keys: required", "secrets.encryption_keys: required", "secrets.pairwise_secret: required"},
		},
		{
			name: "https with secrets from the environment",
			yaml: "issuer: https://id.example.dk\n",
			env:  map[string]string{"ELEVID_SESSION_KEYS": key32, "ELEVID_ENCRYPTION_KEYS": key32 + "," + key32, "ELEVID_PAIRWISE_SECRET": key32},
		},
		{name: "short key", yaml: "secrets:\n  session_keys: [c2hvcnQ=]\n", want: []string{"secrets.session_keys[0]"}},
		{name: "plain http elsewhere", yaml: "issuer: http://id.example.dk\n", want: []string{"must be https unless the host is localhost"}},
		{name: "rp id foreign", yaml: "issuer: http://localhost:8080\nwebauthn:\n  rp_id: example.dk\n", want: []string{"webauthn.rp_id"}},
		{name: "rp id parent domain", yaml: "issuer: https://id.skole.dk\nwebauthn:\n  rp_id: skole.dk\n", env: map[string]string{"ELEVID_SESSION_KEYS": key32, "ELEVID_ENCRYPTION_KEYS": key32, "ELEVID_PAIRWISE_SECRET": key32}},
		{name: "unknown database scheme", yaml: "database: mysql://u:secret@h/db\n", want: []string{"database: unknown scheme", "xxxxx"}},
		{name: "postgres dsn from env", env: map[string]string{"ELEVID_DATABASE": "postgres://u@127.0.0.1/x"}},
		{name: "smtp password without tls", yaml: "smtp:\n  host: mail.example.dk\n  from: a@example.dk\n  username: u\n  tls: none\n", want: []string{"smtp.tls: refusing"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.yaml != "" || tc.env == nil {
				path = writeConfig(t, tc.yaml)
			}
			cfg, err := LoadConfig(path, func(k string) string { return tc.env[k] })
			if err == nil {
				err = cfg.Validate()
			}
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "secret@") {
				t.Errorf("error leaks a DSN password: %v", err)
			}
		})
	}
}

func TestEnvOverridesFile(t *testing.T) {
	p := writeConfig(t, "database: file.db\nlisten: 127.0.0.1:9000\n")
	cfg, err := LoadConfig(p, func(k string) string {
		return map[string]string{"ELEVID_DATABASE": "other.db", "ELEVID_SMTP_PASSWORD": "pw"}[k]
	})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database != "other.db" || cfg.Listen != "127.0.0.1:9000" || cfg.SMTP.Password != "pw" {
		t.Fatalf("cfg = %+v", cfg)
	}
	if cfg.Enrolment.CodeTTL.D() != 7*24*time.Hour {
		t.Fatalf("default code TTL lost: %v", cfg.Enrolment.CodeTTL.D())
	}
}

// Validate reports the problems of every part of the file at once, in the
// order of the file's parts (listen, issuer, WebAuthn, storage, secrets,
// sessions, enrolment, SMTP, retention, server, guardian verification).
func TestConfigValidateReportsAllAtOnce(t *testing.T) {
	cfg, err := LoadConfig("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "nohostport"
	cfg.WebAuthn.Timeout = Duration(time.Second)
	cfg.Log.Level = "loud"
	cfg.Secrets.SessionKeys = []string{"short"}
	cfg.Sessions.PupilIdle = -1
	cfg.Policy.Guardians = "some"
	cfg.SMTP.Host, cfg.SMTP.Port = "mail.example.dk", 0
	cfg.Retention.AccessLog = Duration(time.Hour)
	cfg.Retention.ExpiredFlows = Duration(time.Hour)
	cfg.Server.TrustedProxies = []string{"not-a-cidr"}
	cfg.GuardianVerification.Required = true
	var ce *ConfigError
	if !errors.As(cfg.Validate(), &ce) {
		t.Fatal("no ConfigError")
	}
	var keys []string
	for _, p := range ce.Problems {
		keys = append(keys, p[:strings.Index(p, ":")])
	}
	want := []string{"listen", "webauthn.timeout", "log.level", "secrets.session_keys[0]", "sessions.pupil_idle",
		"policy.guardians", "smtp.port", "smtp.from", "retention.access_log", "retention.expired_flows",
		"server.trusted_proxies", "guardian_verification.required"}
	if strings.Join(keys, " ") != strings.Join(want, " ") {
		t.Fatalf("problems:\n  %s\nwant keys %v", strings.Join(ce.Problems, "\n  "), want)
	}
}
