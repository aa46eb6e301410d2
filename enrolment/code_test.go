package enrolment_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/elevid/elevid/enrolment"
	"github.com/elevid/elevid/school"
)

func TestCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		c := enrolment.NewCode()
		if len(c) != 14 || c[4] != '-' || c[9] != '-' {
			t.Fatalf("code %q is not XXXX-XXXX-XXXX", c)
		}
		norm, ok := enrolment.Normalize(c)
		if !ok || enrolment.Format(norm) != c {
			t.Fatalf("Normalize(%q) = %q %v", c, norm, ok)
		}
		if seen[c] {
			t.Fatalf("code %q repeated", c)
		}
		seen[c] = true
		if strings.ContainsAny(c, "ILOU") {
			t.Fatalf("ambiguous letter in %q", c)
		}
	}
	for in, want := range map[string]string{
		"abcd-efgh-jkmn":   "ABCDEFGHJKMN",
		" ABCD EFGH JKMN ": "ABCDEFGHJKMN",
		"oOiL-0000-1111":   "00110000" + "1111",
		"ABCD-EFGH-JKM":    "",
		"ABCD-EFGH-JKMNP":  "",
		"ABCD-EFGH-JKMU":   "",
		"ÆBCD-EFGH-JKMN":   "",
	} {
		got, ok := enrolment.Normalize(in)
		if got != want || ok != (want != "") {
			t.Errorf("Normalize(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	if bytes.Equal(enrolment.Hash(testSealer, "ABCDEFGHJKMN"), enrolment.Hash(testSealer, "ABCDEFGHJKMP")) || len(enrolment.Hash(testSealer, "x")) != 32 {
		t.Fatal("Hash")
	}
	// Keyed: another key gives another stored form, and neither is the
	// plain SHA-256 the probe could search offline.
	other, _ := school.NewSealer([]byte("another-key-another-key-0123456789"))
	plain := sha256.Sum256([]byte("elevid-enrolment-code:ABCDEFGHJKMN"))
	if bytes.Equal(enrolment.Hash(testSealer, "ABCDEFGHJKMN"), enrolment.Hash(other, "ABCDEFGHJKMN")) ||
		bytes.Equal(enrolment.Hash(testSealer, "ABCDEFGHJKMN"), plain[:]) {
		t.Fatal("Hash is not keyed")
	}
}

func TestQR(t *testing.T) {
	u := enrolment.EnrolURL("https://elevid.example.dk/", "ABCD-EFGH-JKMN")
	if u != "https://elevid.example.dk/enrol?code=ABCD-EFGH-JKMN" {
		t.Fatalf("EnrolURL = %q", u)
	}
	png, err := enrolment.QRPNG(u, 256)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("QRPNG: %v", err)
	}
	svg, err := enrolment.QRSVG(u)
	if err != nil || !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, `<path fill="#000" d="M`) {
		t.Fatalf("QRSVG = %.80q, %v", svg, err)
	}
}

// TestStoredCodeIsKeyed (issue 15, item 4): what the store keeps of a
// code is an HMAC under a server-side key. An attacker with a copy of the
// database who computes the old plain hash of every possible code finds
// nothing; the code still works, also after the key is rotated (new key
// first, old key kept).
func TestStoredCodeIsKeyed(t *testing.T) {
	for _, kind := range []storeKind{onSQLite, onPostgres} {
		t.Run(string(kind), func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, kind)
			code := e.issue(e.pupil)
			norm, _ := enrolment.Normalize(code)
			plain := sha256.Sum256([]byte("elevid-enrolment-code:" + norm))
			if _, err := e.st.EnrolmentCodeByHash(ctx, plain[:]); !errors.Is(err, school.ErrNotFound) {
				t.Fatalf("the plain hash finds the code: %v", err)
			}
			if _, err := e.st.EnrolmentCodeByHash(ctx, enrolment.Hash(testSealer, norm)); err != nil {
				t.Fatalf("the keyed hash: %v", err)
			}
			b := e.browser("en")
			if cer, _ := b.beginEnrol(code); cer == "" {
				t.Fatal("the code does not work")
			}
		})
	}
}

func TestKeyedCodeSurvivesRotation(t *testing.T) {
	old := testSealer
	rotated, err := school.NewSealer([]byte("the-new-key-the-new-key-0123456789"), []byte("enrolment-test-key-0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	h := enrolment.Hash(old, "ABCDEFGHJKMN")
	found := false
	for _, c := range rotated.MACs(enrolment.CodePurpose, []byte("ABCDEFGHJKMN")) {
		found = found || bytes.Equal(c, h)
	}
	if !found || bytes.Equal(enrolment.Hash(rotated, "ABCDEFGHJKMN"), h) {
		t.Fatal("a rotated sealer must still match codes of the old key, and key new ones with the new key")
	}
}
