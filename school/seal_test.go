package school_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/elevid/elevid/school"
)

func TestSealer(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	old, err := school.NewSealer(k1)
	if err != nil {
		t.Fatal(err)
	}
	sealed := old.Seal([]byte("bind-password"), "ldap:s1")
	if bytes.Contains(sealed, []byte("bind-password")) {
		t.Fatal("plaintext visible")
	}
	if pt, err := old.Open(sealed, "ldap:s1"); err != nil || string(pt) != "bind-password" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := old.Open(sealed, "ldap:s2"); !errors.Is(err, school.ErrUnseal) {
		t.Fatalf("wrong context opened: %v", err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	if _, err := old.Open(tampered, "ldap:s1"); !errors.Is(err, school.ErrUnseal) {
		t.Fatalf("tampered value opened: %v", err)
	}
	rotated, _ := school.NewSealer(k2, k1)
	if pt, err := rotated.Open(sealed, "ldap:s1"); err != nil || string(pt) != "bind-password" {
		t.Fatalf("rotated keyring cannot open old value: %v", err)
	}
	if _, err := old.Open(rotated.Seal([]byte("x"), "c"), "c"); err == nil {
		t.Fatal("old keyring opened a value sealed with the new key")
	}
	if _, err := school.NewSealer([]byte("short")); err == nil {
		t.Fatal("short key accepted")
	}
}

// TestSealJSON: a sealed JSON value is URL-safe and opens for its own
// context only; one too long, not base64url, altered or of another context
// is ErrUnseal; one that opens but does not decode is the decoder's error.
func TestSealJSON(t *testing.T) {
	s, err := school.NewSealer(bytes.Repeat([]byte{3}, 32))
	if err != nil {
		t.Fatal(err)
	}
	type state struct {
		ID   string `json:"i"`
		Step int    `json:"n"`
	}
	v, err := s.SealJSON(state{ID: "abc", Step: 2}, "purpose-a")
	if err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(v, "+/=") || strings.Contains(v, "abc") {
		t.Fatalf("not URL-safe or not sealed: %q", v)
	}
	var got state
	if err := s.OpenJSON(v, "purpose-a", len(v), &got); err != nil || got != (state{ID: "abc", Step: 2}) {
		t.Fatalf("OpenJSON = %+v, %v", got, err)
	}
	altered := []byte(v)
	altered[len(altered)/2] ^= 1
	for name, c := range map[string]struct {
		v, context string
		max        int
	}{
		"too long":        {v, "purpose-a", len(v) - 1},
		"not base64url":   {v[:len(v)-1] + "=", "purpose-a", len(v)},
		"altered":         {string(altered), "purpose-a", len(v)},
		"another context": {v, "purpose-b", len(v)},
	} {
		if err := s.OpenJSON(c.v, c.context, c.max, &got); !errors.Is(err, school.ErrUnseal) {
			t.Errorf("%s: %v, want ErrUnseal", name, err)
		}
	}
	var n int
	if err := s.OpenJSON(v, "purpose-a", len(v), &n); err == nil || errors.Is(err, school.ErrUnseal) {
		t.Errorf("decoding into the wrong type: %v, want the decoder's error", err)
	}
}
