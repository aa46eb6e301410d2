package storetest

import (
	"context"
	"crypto/sha256"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

func testGuardianVerifications(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	link := must(st.CreateGuardianLink(ctx, school.GuardianLink{Hash: school.LinkHash("verify-link"), Kind: school.LinkConsent, GuardianID: s.Guardian.ID,
		PupilID: s.Pupil.ID, SchoolID: s.School.ID, ExpiresAt: h.Clock.Now().Add(24 * time.Hour)}))
	state := func(s string) []byte { h := sha256.Sum256([]byte(s)); return h[:] }
	mk := func(name string, ttl time.Duration) {
		t.Helper()
		must(st.CreateGuardianVerification(ctx, school.GuardianVerification{StateHash: state(name), LinkHash: link.Hash, Nonce: "n-" + name,
			Verifier: "v-" + name, ExpiresAt: h.Clock.Now().Add(ttl)}))
	}
	_, err := st.CreateGuardianVerification(ctx, school.GuardianVerification{StateHash: state("x"), LinkHash: link.Hash, ExpiresAt: h.Clock.Now().Add(time.Minute)})
	wantErr(t, err, school.ErrInvalid)
	mk("a", 10*time.Minute)
	mk("b", 10*time.Minute)
	mk("short", time.Minute)
	_, err = st.CreateGuardianVerification(ctx, school.GuardianVerification{StateHash: state("a"), LinkHash: link.Hash, Nonce: "n", Verifier: "v", ExpiresAt: h.Clock.Now().Add(time.Minute)})
	wantErr(t, err, school.ErrConflict)

	_, err = st.GuardianVerified(ctx, link.Hash)
	wantErr(t, err, school.ErrNotFound) // started is not verified
	_, err = st.TakeGuardianVerification(ctx, state("forged"))
	wantErr(t, err, school.ErrNotFound)
	wantErr(t, st.SetGuardianVerified(ctx, state("a"), "https://eid.example sub-1", h.Clock.Now().Add(30*time.Minute)), school.ErrNotFound) // not taken yet

	// Concurrent takes: exactly one wins, the rest see ErrUsed.
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			v, err := st.TakeGuardianVerification(ctx, state("a"))
			switch {
			case err == nil:
				wins.Add(1)
				if v.Nonce != "n-a" || v.Verifier != "v-a" || string(v.LinkHash) != string(link.Hash) || v.UsedAt.IsZero() {
					t.Errorf("taken = %+v", v)
				}
			default:
				wantErr(t, err, school.ErrUsed)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d takes won, want 1", wins.Load())
	}
	must(0, st.SetGuardianVerified(ctx, state("a"), "https://eid.example sub-1", h.Clock.Now().Add(30*time.Minute)))
	wantErr(t, st.SetGuardianVerified(ctx, state("a"), "https://eid.example other", h.Clock.Now().Add(30*time.Minute)), school.ErrNotFound) // once
	if got := must(st.GuardianVerified(ctx, link.Hash)); got != "https://eid.example sub-1" {
		t.Fatalf("GuardianVerified = %q", got)
	}

	// Expiry: an expired state cannot be taken; the verified subject
	// expires too.
	h.Clock.Advance(2 * time.Minute)
	_, err = st.TakeGuardianVerification(ctx, state("short"))
	wantErr(t, err, school.ErrExpired)
	h.Clock.Advance(30 * time.Minute)
	_, err = st.GuardianVerified(ctx, link.Hash)
	wantErr(t, err, school.ErrNotFound)
	_, err = st.TakeGuardianVerification(ctx, state("b"))
	wantErr(t, err, school.ErrExpired)
}
