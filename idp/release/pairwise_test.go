package release_test

import (
	"testing"

	"github.com/elevid/elevid/idp/release"
)

// TestPairwiseVector pins Pairwise to fixed values. Every pairwise subject
// a platform has stored depends on this function: a change to it (the
// separator, the encoding, the hash) would silently give every pupil a
// new identity at every pairwise platform. The values were computed once,
// and cross-checked with Python's hmac/hashlib/base32 (lower-case, no
// padding) independently of the Go code.
func TestPairwiseVector(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	for _, c := range []struct{ pupil, sector, want string }{
		{"pupil-1", "https://platform.example", "ub63n52taoifz564dqhbx7erizvnppelumntze7ohvl2qbe2xm7q"},
		{"pupil-1", "https://other.example", "yrfnrccd6av7ttflvlhdsvpuoobkpkavvjyiuaujllhw3pa3ukoa"},
		{"pupil-2", "https://platform.example", "rfz2it34fixfpve757fqx575lilnhnraw5mqcwlciemnjr3c3kja"},
	} {
		if got := release.Pairwise(secret, c.pupil, c.sector); got != c.want {
			t.Errorf("Pairwise(%q, %q) = %q, want %q", c.pupil, c.sector, got, c.want)
		}
	}
}

// TestPairwiseSeparates checks that the value changes with each input:
// another sector (platform), another pupil, another secret, and that the
// NUL separator keeps "ab"+"c" apart from "a"+"bc".
func TestPairwiseSeparates(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	base := release.Pairwise(secret, "pupil-1", "https://platform.example")
	if again := release.Pairwise(secret, "pupil-1", "https://platform.example"); again != base {
		t.Fatalf("same inputs gave %q and %q", base, again)
	}
	for name, got := range map[string]string{
		"other sector": release.Pairwise(secret, "pupil-1", "https://other.example"),
		"other pupil":  release.Pairwise(secret, "pupil-2", "https://platform.example"),
		"other secret": release.Pairwise([]byte("another secret of thirty-two by"), "pupil-1", "https://platform.example"),
	} {
		if got == base {
			t.Errorf("%s gave the same pairwise id %q", name, got)
		}
	}
	if a, b := release.Pairwise(secret, "ab", "c"), release.Pairwise(secret, "a", "bc"); a == b {
		t.Errorf("pupil/sector boundary is ambiguous: %q", a)
	}
}
