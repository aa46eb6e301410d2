package enrolment

import (
	"fmt"
	"net/url"
	"strings"

	qrcode "github.com/skip2/go-qrcode"
)

// EnrolURL returns the address a printed QR code points to: base (the
// issuer, e.g. "https://elevid.example.dk") + "/enrol?code=CODE".
func EnrolURL(base, code string) string {
	return strings.TrimRight(base, "/") + "/enrol?code=" + url.QueryEscape(code)
}

// QRPNG renders content as a PNG QR code of size×size pixels.
func QRPNG(content string, size int) ([]byte, error) {
	b, err := qrcode.Encode(content, qrcode.Medium, size)
	if err != nil {
		return nil, fmt.Errorf("enrolment: qr: %w", err)
	}
	return b, nil
}

// QRSVG renders content as a scalable SVG QR code (black modules on
// white, with the quiet zone), for print views and <img src="data:…">.
func QRSVG(content string) (string, error) {
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		return "", fmt.Errorf("enrolment: qr: %w", err)
	}
	bm := q.Bitmap() // includes the quiet zone
	n := len(bm)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" shape-rendering="crispEdges" role="img" aria-label="QR"><rect width="%d" height="%d" fill="#fff"/><path fill="#000" d="`, n, n, n, n)
	for y, row := range bm {
		for x := 0; x < len(row); {
			if !row[x] {
				x++
				continue
			}
			start := x
			for x < len(row) && row[x] {
				x++
			}
			fmt.Fprintf(&b, "M%d %dh%dv1h-%dz", start, y, x-start, x-start)
		}
	}
	b.WriteString(`"/></svg>`)
	return b.String(), nil
}
