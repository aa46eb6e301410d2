package oidc_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/elevid/elevid/idp/login"
	"github.com/elevid/elevid/internal/idptest"
	"golang.org/x/oauth2"
)

// TestOIDCACRValues: the acr claim is the REFEDS value SAML asserts for
// the same login; acr_values asking for REFEDS MFA (or SFA, which MFA
// meets) get MFA; acr_values no login meets are refused; discovery lists
// the values.
func TestOIDCACRValues(t *testing.T) {
	ctx := context.Background()
	e := idptest.NewOIDCEnv(t)
	rp := e.NewRP(t, "acrplatform", idptest.RPOptions{})
	e.GrantConsent(rp.Platform.ID)

	resp, err := http.Get(e.Server.URL + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var disco struct {
		ACRValues []string `json:"acr_values_supported"`
	}
	if err := json.Unmarshal([]byte(idptest.Body(t, resp)), &disco); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(disco.ACRValues, []string{login.ACRREFEDSMFA, login.ACRREFEDSSFA}) {
		t.Fatalf("acr_values_supported = %v", disco.ACRValues)
	}

	b := idptest.NewBrowser()
	for _, values := range []string{login.ACRREFEDSMFA, login.ACRREFEDSSFA + " " + login.ACRREFEDSMFA, login.ACRPasskeyUV} {
		tok, err := rp.Exchange(ctx, e.Authorize(t, b, rp, oauth2.SetAuthURLParam("acr_values", values)))
		if err != nil {
			t.Fatalf("acr_values %q: %v", values, err)
		}
		idt, err := rp.Verifier.Verify(ctx, tok.Extra("id_token").(string))
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
	res := e.Authorize(t, b, rp, oauth2.SetAuthURLParam("acr_values", "urn:example:acr:smartcard"))
	if res.Err != "access_denied" || !strings.Contains(res.ErrDesc, "unmet_authentication_requirements") || res.Code != "" {
		t.Fatalf("unmeetable acr_values: %+v", res)
	}
}
