package enrollment_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/elevid/elevid/enrollment"
)

func TestCodes(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		c := enrollment.NewCode()
		if len(c) != 14 || c[4] != '-' || c[9] != '-' {
			t.Fatalf("code %q is not XXXX-XXXX-XXXX", c)
		}
		norm, ok := enrollment.Normalize(c)
		if !ok || enrollment.Format(norm) != c {
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
		got, ok := enrollment.Normalize(in)
		if got != want || ok != (want != "") {
			t.Errorf("Normalize(%q) = %q %v, want %q", in, got, ok, want)
		}
	}
	if bytes.Equal(enrollment.Hash("ABCDEFGHJKMN"), enrollment.Hash("ABCDEFGHJKMP")) || len(enrollment.Hash("x")) != 32 {
		t.Fatal("Hash")
	}
}

func TestQR(t *testing.T) {
	u := enrollment.EnrolURL("https://elevid.example.dk/", "ABCD-EFGH-JKMN")
	if u != "https://elevid.example.dk/enrol?code=ABCD-EFGH-JKMN" {
		t.Fatalf("EnrolURL = %q", u)
	}
	png, err := enrollment.QRPNG(u, 256)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("QRPNG: %v", err)
	}
	svg, err := enrollment.QRSVG(u)
	if err != nil || !strings.HasPrefix(svg, "<svg") || !strings.Contains(svg, `<path fill="#000" d="M`) {
		t.Fatalf("QRSVG = %.80q, %v", svg, err)
	}
}
