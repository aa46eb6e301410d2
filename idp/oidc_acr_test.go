package idp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/elevid/elevid/idp/login"
	"golang.org/x/oauth2"
)

// TestOIDCACRValues: the acr claim is the REFEDS value SAML asserts for
// the same login; acr_values asking for REFEDS MFA (or SFA, which MFA
// meets) get MFA; acr_values no login meets are refused; discovery lists
// the values.
func TestOIDCACRValues(t *testing.T) {
	ctx := context.Background()
	e := newOIDCEnv(t)
	rp := e.newRP(t, "acrplatform", rpOptions{})
	e.grantConsent(rp.platform.ID)

	resp, err := http.Get(e.srv.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disco struct {
		ACRValues []string `json:"acr_values_supported"`
	}
	if err := json.Unmarshal([]byte(body(t, resp)), &disco); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(disco.ACRValues, []string{login.ACRREFEDSMFA, login.ACRREFEDSSFA}) {
		t.Fatalf("acr_values_supported = %v", disco.ACRValues)
	}

	b := newBrowser()
	for _, values := range []string{login.ACRREFEDSMFA, login.ACRREFEDSSFA + " " + login.ACRREFEDSMFA, login.ACRPasskeyUV} {
		tok, err := rp.exchange(ctx, e.authorize(t, b, rp, oauth2.SetAuthURLParam("acr_values", values)))
		if err != nil {
			t.Fatalf("acr_values %q: %v", values, err)
		}
		idt, err := rp.verifier.Verify(ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatal(err)
		}
		var c struct {
			ACR string `json:"acr"`
		}
		if err := idt.Claims(&c); err != nil {
			t.Fatal(err)
		}
		if c.ACR != login.ACRREFEDSMFA {
			t.Fatalf("acr_values %q: acr = %q, want %s", values, c.ACR, login.ACRREFEDSMFA)
		}
	}
	res := e.authorize(t, b, rp, oauth2.SetAuthURLParam("acr_values", "urn:example:acr:smartcard"))
	if res.err != "access_denied" || !strings.Contains(res.errDesc, "unmet_authentication_requirements") || res.code != "" {
		t.Fatalf("unmeetable acr_values: %+v", res)
	}
}
