package storetest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

func testSAML(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	seed := NewSeed(t, st)

	t.Run("MessageIDReplay", func(t *testing.T) {
		exp := h.Clock.Now().Add(5 * time.Minute)
		if err := st.UseSAMLMessageID(ctx, "https://sp.example", "id-1", exp); err != nil {
			t.Fatal(err)
		}
		wantErr(t, st.UseSAMLMessageID(ctx, "https://sp.example", "id-1", exp), school.ErrUsed)
		// Same id from another issuer is another message.
		if err := st.UseSAMLMessageID(ctx, "https://other.example", "id-1", exp); err != nil {
			t.Fatal(err)
		}
		// After expiry the record may be reused.
		h.Clock.Advance(6 * time.Minute)
		if err := st.UseSAMLMessageID(ctx, "https://sp.example", "id-1", h.Clock.Now().Add(time.Minute)); err != nil {
			t.Fatalf("expired id not reusable: %v", err)
		}
	})

	t.Run("MessageIDConcurrent", func(t *testing.T) {
		var ok atomic.Int32
		var wg sync.WaitGroup
		exp := h.Clock.Now().Add(time.Minute)
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := st.UseSAMLMessageID(ctx, "https://sp.example", "race", exp); err == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d concurrent uses succeeded, want 1", ok.Load())
		}
	})

	t.Run("Flows", func(t *testing.T) {
		wantErr(t, st.CreateSAMLFlow(ctx, school.SAMLFlow{ID: "x"}), school.ErrInvalid)
		f := school.SAMLFlow{ID: "f1", Kind: "sso", Data: []byte(`{"a":1}`), ExpiresAt: h.Clock.Now().Add(10 * time.Minute)}
		if err := st.CreateSAMLFlow(ctx, f); err != nil {
			t.Fatal(err)
		}
		wantErr(t, st.CreateSAMLFlow(ctx, f), school.ErrConflict)
		got := must(st.GetSAMLFlow(ctx, "f1"))
		if got.Kind != "sso" || string(got.Data) != `{"a":1}` || !got.ExpiresAt.Equal(f.ExpiresAt) {
			t.Fatalf("got %+v", got)
		}
		_, err := st.GetSAMLFlow(ctx, "nope")
		wantErr(t, err, school.ErrNotFound)
		must(st.ConsumeSAMLFlow(ctx, "f1"))
		_, err = st.ConsumeSAMLFlow(ctx, "f1")
		wantErr(t, err, school.ErrUsed)
		_, err = st.GetSAMLFlow(ctx, "f1")
		wantErr(t, err, school.ErrUsed)

		if err := st.CreateSAMLFlow(ctx, school.SAMLFlow{ID: "f2", Kind: "sso", Data: []byte(`{}`), ExpiresAt: h.Clock.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		h.Clock.Advance(time.Minute)
		_, err = st.ConsumeSAMLFlow(ctx, "f2")
		wantErr(t, err, school.ErrExpired)

		// Concurrent consumers: exactly one wins.
		if err := st.CreateSAMLFlow(ctx, school.SAMLFlow{ID: "f3", Kind: "sso", Data: []byte(`{}`), ExpiresAt: h.Clock.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		var ok atomic.Int32
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := st.ConsumeSAMLFlow(ctx, "f3"); err == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		if ok.Load() != 1 {
			t.Fatalf("%d concurrent consumes succeeded, want 1", ok.Load())
		}
	})

	t.Run("Keys", func(t *testing.T) {
		_, err := st.CreateSAMLKey(ctx, school.SAMLKey{})
		wantErr(t, err, school.ErrInvalid)
		k1 := must(st.CreateSAMLKey(ctx, school.SAMLKey{SealedKey: []byte("k1"), CertDER: []byte("c1")}))
		h.Clock.Advance(time.Second)
		k2 := must(st.CreateSAMLKey(ctx, school.SAMLKey{SealedKey: []byte("k2"), CertDER: []byte("c2")}))
		keys := must(st.ListSAMLKeys(ctx))
		if len(keys) != 2 || keys[0].ID != k2.ID || keys[1].ID != k1.ID || string(keys[1].SealedKey) != "k1" || string(keys[0].CertDER) != "c2" {
			t.Fatalf("keys = %+v", keys)
		}
		if err := st.RetireSAMLKey(ctx, k1.ID); err != nil {
			t.Fatal(err)
		}
		wantErr(t, st.RetireSAMLKey(ctx, k1.ID), school.ErrNotFound)
		if keys := must(st.ListSAMLKeys(ctx)); len(keys) != 1 || keys[0].ID != k2.ID {
			t.Fatalf("after retire: %+v", keys)
		}
	})

	t.Run("Participants", func(t *testing.T) {
		_, err := st.AddSAMLParticipant(ctx, school.SAMLParticipant{SessionID: "s"})
		wantErr(t, err, school.ErrInvalid)
		plat := must(st.CreatePlatform(ctx, school.Platform{Name: "SP", Protocol: school.ProtocolSAML, ClientID: "https://sp.example/saml"}))
		exp := h.Clock.Now().Add(time.Hour)
		p1 := must(st.AddSAMLParticipant(ctx, school.SAMLParticipant{SessionID: "sess", PupilID: seed.Pupil.ID, PlatformID: plat.ID, NameID: "n1", NameIDFormat: "persistent", SessionIndex: "i1", ExpiresAt: exp}))
		must(st.AddSAMLParticipant(ctx, school.SAMLParticipant{SessionID: "other", PupilID: seed.Pupil.ID, PlatformID: plat.ID, NameID: "n1", ExpiresAt: h.Clock.Now().Add(time.Minute)}))
		got := must(st.SAMLParticipants(ctx, "sess"))
		if len(got) != 1 || got[0].ID != p1.ID || got[0].NameID != "n1" || got[0].SessionIndex != "i1" || got[0].PlatformID != plat.ID {
			t.Fatalf("participants = %+v", got)
		}
		if got := must(st.SAMLParticipantsByNameID(ctx, plat.ID, "n1")); len(got) != 2 {
			t.Fatalf("by name id = %d, want 2", len(got))
		}
		h.Clock.Advance(2 * time.Minute)
		if got := must(st.SAMLParticipantsByNameID(ctx, plat.ID, "n1")); len(got) != 1 {
			t.Fatalf("expired participant listed: %d", len(got))
		}
		if n := must(st.PruneSAML(ctx)); n < 1 {
			t.Fatalf("PruneSAML removed %d rows", n)
		}
		if err := st.DeleteSAMLParticipants(ctx, "sess"); err != nil {
			t.Fatal(err)
		}
		if got := must(st.SAMLParticipants(ctx, "sess")); len(got) != 0 {
			t.Fatalf("after delete: %+v", got)
		}
	})
}
