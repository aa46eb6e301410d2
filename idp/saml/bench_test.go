package saml_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	idpsaml "github.com/elevid/elevid/idp/saml"
	"github.com/elevid/elevid/internal/idptest"
)

// BenchmarkSAMLSignedResponse measures building and signing Responses
// (response and assertion both signed, RSA-SHA256, 2048-bit key, no
// encryption) on all cores; it reports responses/s.
func BenchmarkSAMLSignedResponse(b *testing.B) {
	h := idptest.NewSAMLHarness(b)
	sp := h.NewSP(b, idptest.SPOptions{Consent: true, Spec: idpsaml.PlatformSpec{NoEncrypt: true}})
	ctx := context.Background()
	if _, err := h.SAML.SignedResponseForBench(ctx, sp.Platform.ID, h.Pupil.ID); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.SAML.SignedResponseForBench(ctx, sp.Platform.ID, h.Pupil.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "responses/s")
}

// BenchmarkSAMLIdPInitiatedHTTP measures whole IdP-initiated logins over
// HTTP: consent check, participant and release-log writes (SQLite),
// signing and the rendered auto-post page.
func BenchmarkSAMLIdPInitiatedHTTP(b *testing.B) {
	h := idptest.NewSAMLHarness(b)
	sp := h.NewSP(b, idptest.SPOptions{Consent: true, Spec: idpsaml.PlatformSpec{NoEncrypt: true}})
	sid := h.Sessions.Login(h.Pupil.ID)
	path := "/saml/idp-initiated?sp=" + url.QueryEscape(sp.EntityID)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := h.Get(b, path, sid)
			idptest.ReadAll(b, r)
			if r.StatusCode != 200 {
				b.Errorf("status %d", r.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}
