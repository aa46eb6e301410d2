package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/elevid/elevid/school"
)

func testOIDC(t *testing.T, h Harness) {
	s := NewSeed(t, h.Store)
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, h Harness, s Seed)
	}{
		{"SigningKeys", testOIDCSigningKeys},
		{"CodeOnce", testOIDCCodeOnce},
		{"Tokens", testOIDCTokens},
		{"Releases", testReleases},
		{"ExpiredInBatches", testOIDCExpiredInBatches},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, h, s) })
	}
}

func testOIDCSigningKeys(t *testing.T, h Harness, _ Seed) {
	ctx := context.Background()
	st := h.Store
	key := func(id, alg string, gen int64) school.OIDCSigningKey {
		return school.OIDCSigningKey{ID: id, Algorithm: alg, Generation: gen, SealedKey: []byte("sealed-" + id), PublicKey: []byte("pub-" + id)}
	}
	_, err := st.AddOIDCSigningKey(ctx, school.OIDCSigningKey{ID: "x", Algorithm: "ES256"})
	wantErr(t, err, school.ErrInvalid)
	k1 := must(st.AddOIDCSigningKey(ctx, key("k1", "ES256", 1)))
	if !k1.CreatedAt.Equal(h.Clock.Now()) || !k1.NotBefore.Equal(k1.CreatedAt) {
		t.Fatalf("added key = %+v", k1)
	}
	must(st.AddOIDCSigningKey(ctx, key("r1", "RS256", 1)))
	_, err = st.AddOIDCSigningKey(ctx, key("k1", "ES256", 7))
	wantErr(t, err, school.ErrConflict)

	// Two nodes rotating at once: exactly one generation 2 is stored.
	var wg sync.WaitGroup
	var wins, conflicts int
	var mu sync.Mutex
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := key("k2-"+string(rune('a'+i)), "ES256", 2)
			_, err := st.AddOIDCSigningKey(ctx, k)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, school.ErrConflict):
				conflicts++
			default:
				t.Errorf("concurrent add: %v", err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != 7 {
		t.Fatalf("concurrent rotation: %d wins, %d conflicts", wins, conflicts)
	}
	list := must(st.ListOIDCSigningKeys(ctx))
	if len(list) != 3 || list[0].Algorithm != "ES256" || list[0].Generation != 2 || list[1].ID != "k1" || list[2].ID != "r1" ||
		!slices.Equal(list[1].SealedKey, []byte("sealed-k1")) || !slices.Equal(list[1].PublicKey, []byte("pub-k1")) {
		t.Fatalf("ListOIDCSigningKeys = %+v", list)
	}
	if err := st.DeleteOIDCSigningKey(ctx, "k1"); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.DeleteOIDCSigningKey(ctx, "k1"), school.ErrNotFound)
}

// testOIDCCodeOnce checks an authorization code's single use: of
// concurrent tokens naming one code exactly one is stored, the others get
// ErrUsed; tokens without a code, or of other codes, are unaffected.
func testOIDCCodeOnce(t *testing.T, h Harness, s Seed) {
	ctx := context.Background()
	st := h.Store
	now := h.Clock.Now()
	pupil := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, ExternalID: "p-code", GivenName: "Kim", Status: school.PupilActive}))
	tok := school.OIDCToken{Kind: school.TokenAccess, PlatformID: s.Platform.ID, PupilID: pupil.ID, SessionRef: "sess",
		AuthRequestID: "code-ar1", FamilyID: "code-ar1", CodeID: "code-ar1", Subject: "code-sub", AuthTime: now, ExpiresAt: now.Add(72 * time.Hour)}
	var wg sync.WaitGroup
	results := make(chan error, 6)
	for range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := st.CreateOIDCToken(ctx, tok)
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		if err == nil {
			ok++
		} else if !errors.Is(err, school.ErrUsed) {
			t.Fatalf("concurrent redemption: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d redemptions of one code succeeded, want 1", ok)
	}
	// In a transaction too, and the transaction's other work is undone
	// by the caller's error.
	err := st.InTx(ctx, func(q school.Queries) error {
		_, err := q.CreateOIDCToken(ctx, tok)
		return err
	})
	wantErr(t, err, school.ErrUsed)
	other := tok
	other.CodeID = "code-ar2"
	must(st.CreateOIDCToken(ctx, other))
	noCode := tok
	noCode.CodeID = ""
	must(st.CreateOIDCToken(ctx, noCode))
	must(st.CreateOIDCToken(ctx, noCode))
	if list := must(st.ListOIDCTokens(ctx, school.OIDCTokenFilter{PlatformID: tok.PlatformID, Subject: "code-sub"})); len(list) != 4 {
		t.Fatalf("%d tokens stored, want 4", len(list))
	}
}

func testOIDCTokens(t *testing.T, h Harness, s Seed) {
	ctx := context.Background()
	st := h.Store
	other := must(st.CreatePlatform(ctx, school.Platform{Name: "Other", Protocol: school.ProtocolOIDC, ClientID: "other"}))
	now := h.Clock.Now()
	base := school.OIDCToken{Kind: school.TokenAccess, PlatformID: s.Platform.ID, PupilID: s.Pupil.ID, SessionRef: "s1",
		AuthRequestID: "ar1", Subject: "sub-1", Scopes: []string{"openid", "profile"}, AuthTime: now, AMR: []string{"hwk"}, ACR: "acr",
		ExpiresAt: now.Add(time.Hour)}
	_, err := st.CreateOIDCToken(ctx, school.OIDCToken{Kind: "id"})
	wantErr(t, err, school.ErrInvalid)
	bad := base
	bad.Kind = school.TokenRefresh
	_, err = st.CreateOIDCToken(ctx, bad)
	wantErr(t, err, school.ErrInvalid)
	access := must(st.CreateOIDCToken(ctx, base))
	got := must(st.GetOIDCToken(ctx, access.ID))
	if got.Subject != "sub-1" || !slices.Equal(got.Scopes, base.Scopes) || !got.ActiveAt(now) || got.Hash != nil || got.ACR != "acr" {
		t.Fatalf("GetOIDCToken = %+v", got)
	}
	rh := sha256.Sum256([]byte("refresh-1"))
	ref := base
	ref.Kind, ref.Hash, ref.FamilyID, ref.ExpiresAt = school.TokenRefresh, rh[:], "fam", now.Add(24*time.Hour)
	refresh := must(st.CreateOIDCToken(ctx, ref))
	_, err = st.CreateOIDCToken(ctx, ref)
	wantErr(t, err, school.ErrConflict)
	if got := must(st.OIDCTokenByHash(ctx, rh[:])); got.ID != refresh.ID || got.FamilyID != "fam" {
		t.Fatalf("OIDCTokenByHash = %+v", got)
	}
	_, err = st.OIDCTokenByHash(ctx, []byte("nope"))
	wantErr(t, err, school.ErrNotFound)
	wantErr(t, st.UseOIDCRefreshToken(ctx, access.ID), school.ErrNotFound)
	if err := st.UseOIDCRefreshToken(ctx, refresh.ID); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.UseOIDCRefreshToken(ctx, refresh.ID), school.ErrUsed)

	o := base
	o.PlatformID, o.SessionRef, o.AuthRequestID, o.FamilyID = other.ID, "s2", "ar2", "fam2"
	onOther := must(st.CreateOIDCToken(ctx, o))
	list := must(st.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: s.Pupil.ID}))
	if len(list) != 2 { // the rotated refresh token is not active
		t.Fatalf("ListOIDCTokens = %+v", list)
	}
	_, err = st.ListOIDCTokens(ctx, school.OIDCTokenFilter{})
	wantErr(t, err, school.ErrInvalid)
	_, err = st.RevokeOIDCTokens(ctx, school.OIDCTokenFilter{})
	wantErr(t, err, school.ErrInvalid)
	// A family or session is found through its pupil, a subject through
	// its platform (they have no index of their own): a filter without
	// them is refused, not a scan.
	for _, f := range []school.OIDCTokenFilter{{FamilyID: "fam2"}, {SessionRef: "s1"}, {PlatformID: s.Platform.ID, FamilyID: "fam2"}, {Subject: "sub-1"}} {
		_, err = st.ListOIDCTokens(ctx, f)
		wantErr(t, err, school.ErrInvalid)
		_, err = st.RevokeOIDCTokens(ctx, f)
		wantErr(t, err, school.ErrInvalid)
	}
	if n := must(st.RevokeOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: s.Pupil.ID, PlatformID: s.Platform.ID})); n != 2 {
		t.Fatalf("RevokeOIDCTokens = %d, want 2", n)
	}
	if got := must(st.GetOIDCToken(ctx, access.ID)); got.RevokedAt.IsZero() || got.ActiveAt(now) {
		t.Fatalf("revoked token = %+v", got)
	}
	if got := must(st.GetOIDCToken(ctx, onOther.ID)); !got.ActiveAt(now) {
		t.Fatal("a token of another platform was revoked")
	}
	if n := must(st.RevokeOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: s.Pupil.ID, FamilyID: "fam2"})); n != 1 {
		t.Fatalf("revoke by family = %d", n)
	}
	// Expired tokens are not listed and are pruned.
	must(st.CreateOIDCToken(ctx, base))
	h.Clock.Advance(2 * time.Hour)
	if list := must(st.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: s.Pupil.ID})); len(list) != 0 {
		t.Fatalf("expired tokens listed: %+v", list)
	}
	if list := must(st.ListOIDCTokens(ctx, school.OIDCTokenFilter{PupilID: s.Pupil.ID, Inactive: true})); len(list) != 4 {
		t.Fatalf("ListOIDCTokens(Inactive) = %d tokens, want 4", len(list))
	}
	if n := must(st.PruneOIDC(ctx, h.Clock.Now())); n != 3 {
		t.Fatalf("PruneOIDC = %d, want 3 expired access tokens", n)
	}
	// Erasing the pupil erases the tokens.
	if err := st.DeletePupil(ctx, s.Pupil.ID); err != nil {
		t.Fatal(err)
	}
	_, err = st.GetOIDCToken(ctx, refresh.ID)
	wantErr(t, err, school.ErrNotFound)
}

func testReleases(t *testing.T, h Harness, s Seed) {
	ctx := context.Background()
	st := h.Store
	s.Pupil = must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, ExternalID: "p-rel", GivenName: "Bo", Status: school.PupilActive}))
	_, err := st.AddRelease(ctx, school.Release{PupilID: s.Pupil.ID})
	wantErr(t, err, school.ErrInvalid)
	r1 := must(st.AddRelease(ctx, school.Release{PupilID: s.Pupil.ID, PlatformID: s.Platform.ID, PlatformName: s.Platform.Name,
		Protocol: school.ProtocolOIDC, Via: "id_token", Claims: []string{"sub", "given_name"}}))
	h.Clock.Advance(time.Minute)
	must(st.AddRelease(ctx, school.Release{PupilID: s.Pupil.ID, PlatformID: s.Platform.ID, PlatformName: s.Platform.Name,
		Protocol: school.ProtocolOIDC, Via: "userinfo"}))
	list := must(st.ListReleases(ctx, s.Pupil.ID))
	if len(list) != 2 || list[0].Via != "userinfo" || list[1].ID != r1.ID || !slices.Equal(list[1].Claims, []string{"sub", "given_name"}) ||
		!list[1].Time.Equal(r1.Time) || list[1].Protocol != school.ProtocolOIDC || list[0].Claims == nil {
		t.Fatalf("ListReleases = %+v", list)
	}
	if list := must(st.ListReleases(ctx, "other")); len(list) != 0 {
		t.Fatalf("ListReleases(other) = %+v", list)
	}
	// The log outlives the platform but not the pupil.
	if err := st.DeletePlatform(ctx, s.Platform.ID); err != nil {
		t.Fatal(err)
	}
	if list := must(st.ListReleases(ctx, s.Pupil.ID)); len(list) != 2 || list[0].PlatformName != "MatematikFessor" {
		t.Fatalf("after platform removal: %+v", list)
	}
	if err := st.DeletePupil(ctx, s.Pupil.ID); err != nil {
		t.Fatal(err)
	}
	if list := must(st.ListReleases(ctx, s.Pupil.ID)); len(list) != 0 {
		t.Fatalf("after pupil erasure: %+v", list)
	}
}

// testLogoutQueue checks the queue of back-channel logouts: notices are
// leased to one node at a time, retried when due, removed when delivered
// and pruned when expired.
func testLogoutQueue(t *testing.T, h Harness) {
	ctx := context.Background()
	st := h.Store
	s := NewSeed(t, st)
	for _, bad := range []school.LogoutNotice{
		{Subject: "sub", ExpiresAt: h.Clock.Now().Add(time.Hour)},
		{PlatformID: s.Platform.ID, ExpiresAt: h.Clock.Now().Add(time.Hour)},
		{PlatformID: s.Platform.ID, Subject: "sub"},
	} {
		_, err := st.QueueLogout(ctx, bad)
		wantErr(t, err, school.ErrInvalid)
	}
	_, err := st.QueueLogout(ctx, school.LogoutNotice{PlatformID: "nope", Subject: "sub", ExpiresAt: h.Clock.Now().Add(time.Hour)})
	wantErr(t, err, school.ErrInvalid)
	_, err = st.ClaimLogouts(ctx, "", school.ProtocolOIDC, time.Minute, 5)
	wantErr(t, err, school.ErrInvalid)

	const n = 12
	exp := h.Clock.Now().Add(24 * time.Hour)
	for i := range n {
		must(st.QueueLogout(ctx, school.LogoutNotice{PlatformID: s.Platform.ID, Subject: fmt.Sprintf("sub-%d", i), Sid: "sid", ExpiresAt: exp}))
	}
	later := must(st.QueueLogout(ctx, school.LogoutNotice{PlatformID: s.Platform.ID, Subject: "later", ExpiresAt: exp, NextAt: h.Clock.Now().Add(time.Hour)}))
	l := must(st.ListLogouts(ctx))
	if len(l) != n+1 {
		t.Fatalf("ListLogouts = %d notices, want %d", len(l), n+1)
	}
	for _, x := range l {
		wantSid := "sid"
		if x.ID == later.ID {
			wantSid = ""
		}
		if x.Sid != wantSid || x.PlatformID != s.Platform.ID || !x.ExpiresAt.Equal(exp) || !x.CreatedAt.Equal(h.Clock.Now()) || x.Attempts != 0 {
			t.Fatalf("listed notice %+v", x)
		}
	}

	// Concurrent claimers on "several nodes" never share a notice, and
	// the one not yet due stays.
	seen := claimOnNodes(t, func(owner string) ([]school.LogoutNotice, error) {
		return st.ClaimLogouts(ctx, owner, school.ProtocolOIDC, time.Minute, 5)
	},
		func(x school.LogoutNotice) string { return x.ID },
		func(x school.LogoutNotice) bool { return x.Attempts == 1 && x.ID != later.ID })
	if len(seen) != n {
		t.Fatalf("claimed %d of %d", len(seen), n)
	}
	if ns := must(st.ClaimLogouts(ctx, "node-z", school.ProtocolOIDC, time.Minute, 50)); len(ns) != 0 {
		t.Fatalf("leased notices claimed again: %d", len(ns))
	}
	var ids []string
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	// Delivered: gone; only the lease holder may say so.
	wantErr(t, st.LogoutDelivered(ctx, ids[0], "node-z"), school.ErrLocked)
	if err := st.LogoutDelivered(ctx, ids[0], seen[ids[0]]); err != nil {
		t.Fatal(err)
	}
	wantErr(t, st.LogoutDelivered(ctx, ids[0], seen[ids[0]]), school.ErrLocked)
	// Failed: due again at the retry time, with the reason kept.
	wantErr(t, st.LogoutFailed(ctx, ids[1], "node-z", "x", h.Clock.Now()), school.ErrLocked)
	if err := st.LogoutFailed(ctx, ids[1], seen[ids[1]], "status 503", h.Clock.Now().Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ns := must(st.ClaimLogouts(ctx, "node-z", school.ProtocolOIDC, time.Minute, 50)); len(ns) != 0 {
		t.Fatalf("a failed notice came back before its retry time: %d", len(ns))
	}
	h.Clock.Advance(31 * time.Second)
	ns := must(st.ClaimLogouts(ctx, "node-z", school.ProtocolOIDC, time.Minute, 50))
	if len(ns) != 1 || ns[0].ID != ids[1] || ns[0].Attempts != 2 || ns[0].LastError != "status 503" {
		t.Fatalf("retry claim = %+v", ns)
	}
	// A lease that ran out goes to another node.
	h.Clock.Advance(2 * time.Minute)
	if ns := must(st.ClaimLogouts(ctx, "node-y", school.ProtocolOIDC, time.Minute, 50)); len(ns) != n-1 {
		t.Fatalf("after the leases ran out: %d claimed, want %d", len(ns), n-1)
	}
	wantErr(t, st.LogoutDelivered(ctx, ids[1], "node-z"), school.ErrLocked)
	// Expired notices are never claimed and are pruned.
	h.Clock.Advance(25 * time.Hour)
	if ns := must(st.ClaimLogouts(ctx, "node-x", school.ProtocolOIDC, time.Minute, 50)); len(ns) != 0 {
		t.Fatalf("expired notices claimed: %d", len(ns))
	}
	if got := must(st.PruneOIDC(ctx, h.Clock.Now())); got != n {
		t.Fatalf("PruneOIDC = %d, want the %d notices left", got, n)
	}
	if l := must(st.ListLogouts(ctx)); len(l) != 0 {
		t.Fatalf("%d notices after pruning", len(l))
	}
}

// testOIDCExpiredInBatches: the retention purge of expired state takes at
// most batch tokens per call (a backlog goes in many short transactions,
// not one that holds the write lock for minutes) and repeated calls empty
// it.
func testOIDCExpiredInBatches(t *testing.T, h Harness, s Seed) {
	ctx := context.Background()
	st := h.Store
	pupil := must(st.CreatePupil(ctx, school.Pupil{SchoolID: s.School.ID, ExternalID: "p-batch", GivenName: "Lea", Status: school.PupilActive}))
	pf := must(st.CreatePlatform(ctx, school.Platform{Name: "Batch", Protocol: school.ProtocolOIDC, ClientID: "batch"}))
	now := h.Clock.Now()
	for range 5 {
		must(st.CreateOIDCToken(ctx, school.OIDCToken{Kind: school.TokenAccess, PlatformID: pf.ID, PupilID: pupil.ID,
			Subject: "batch-sub", ExpiresAt: now.Add(time.Minute)}))
	}
	h.Clock.Advance(time.Hour)
	left := func() int {
		return len(must(st.ListOIDCTokens(ctx, school.OIDCTokenFilter{PlatformID: pf.ID, Subject: "batch-sub", Inactive: true})))
	}
	for _, want := range []int{3, 1, 0} {
		if _, err := st.Purge(ctx, school.PurgeExpired, h.Clock.Now(), h.Clock.Now(), 2); err != nil {
			t.Fatal(err)
		}
		if got := left(); got != want {
			t.Fatalf("after a purge of 2: %d expired tokens left, want %d", got, want)
		}
	}
	for range 10 {
		if n := must(st.Purge(ctx, school.PurgeExpired, h.Clock.Now(), h.Clock.Now(), 2)); n == 0 {
			return
		}
	}
	t.Fatal("repeated purges never reach 0")
}
