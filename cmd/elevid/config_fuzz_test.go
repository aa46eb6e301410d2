package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfig decodes arbitrary configuration files: LoadConfig and
// Validate never panic, and a file that loads and validates has a listen
// address and an issuer.
func FuzzConfig(f *testing.F) {
	for _, s := range []string{
		"", "listen: 127.0.0.1:8080\n", "listen: nope\nlog:\n  level: loud\n", "server:\n  metrics_listen: 0.0.0.0:9090\n",
		"unknown: 1\n", "secrets:\n  encryption_keys: [\"!!\"]\n", "retention: {access_log: 1x}\n", "a: &a [*a]\n",
		"issuer: \"http://\xff\"\n", "enrolment: {code_ttl: 99999999999d}\n",
	} {
		f.Add(s)
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data string) {
		p := filepath.Join(dir, "c.yaml")
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := LoadConfig(p, noEnv)
		if err != nil {
			return
		}
		if cfg.Validate() == nil && (cfg.Listen == "" || cfg.Issuer == "") {
			t.Fatalf("valid config without listen or issuer: %q", data)
		}
	})
}
