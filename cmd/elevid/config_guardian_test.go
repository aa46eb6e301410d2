package main

import (
	"strings"
	"testing"
	"time"
)

func TestGuardianVerificationConfig(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // substrings that must all appear; empty means valid
	}{
		{name: "off by default", yaml: ""},
		{name: "secret from the environment", yaml: "guardian_verification:\n  issuer: https://broker.example.dk\n  client_id: elevid\n  scopes: [profile]\n",
			env: map[string]string{"ELEVID_GUARDIAN_OIDC_SECRET": "s3cret"}},
		{name: "required without issuer", yaml: "guardian_verification:\n  required: true\n", want: []string{"guardian_verification.required: needs"}},
		{
			name: "every problem at once",
			yaml: "guardian_verification:\n  issuer: http://broker.example.dk?x=1\n  scopes: [\"a b\", \"\"]\n  ttl: 2h\n",
			want: []string{"guardian_verification.issuer:", "guardian_verification.client_id:", "guardian_verification.client_secret:",
				"guardian_verification.scopes[0]:", "guardian_verification.scopes[1]:", "guardian_verification.ttl:"},
		},
		{name: "unknown key", yaml: "guardian_verification:\n  clientid: x\n", want: []string{"field clientid not found"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := LoadConfig(writeConfig(t, tc.yaml), func(k string) string { return tc.env[k] })
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
		})
	}
	cfg, err := LoadConfig(writeConfig(t, "guardian_verification:\n  issuer: https://broker.example.dk\n  client_id: elevid\n"),
		func(k string) string { return map[string]string{"ELEVID_GUARDIAN_OIDC_SECRET": "s3cret"}[k] })
	if err != nil {
		t.Fatal(err)
	}
	gv := cfg.GuardianVerification
	if gv.Name != "broker.example.dk" || gv.ClientSecret != "s3cret" || gv.TTL.D() != 15*time.Minute || gv.Required {
		t.Fatalf("guardian_verification = %+v", gv)
	}
}
