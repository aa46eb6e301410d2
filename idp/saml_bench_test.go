package idp_test

import (
	"context"
	"net/url"
	"testing"
	"time"
)

// BenchmarkSAMLSignedResponse measures building and signing Responses
// (response and assertion both signed, RSA-SHA256, 2048-bit key, no
// encryption) on all cores; it reports responses/s.
func BenchmarkSAMLSignedResponse(b *testing.B) {
	h := newHarness(b)
	sp := h.newSP(b, spOptions{consent: true, flags: []string{"--no-encrypt"}})
	ctx := context.Background()
	if _, err := h.saml.SignedResponseForBench(ctx, sp.platform.ID, h.pupil.ID); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := h.saml.SignedResponseForBench(ctx, sp.platform.ID, h.pupil.ID); err != nil {
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
	h := newHarness(b)
	sp := h.newSP(b, spOptions{consent: true, flags: []string{"--no-encrypt"}})
	sid := h.sessions.login(h.pupil.ID)
	path := "/saml/idp-initiated?sp=" + url.QueryEscape(sp.EntityID)
	start := time.Now()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			r := h.get(b, path, sid)
			readAll(b, r)
			if r.StatusCode != 200 {
				b.Errorf("status %d", r.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}
