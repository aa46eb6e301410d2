package school_test

import (
	"bytes"
	"errors"
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
