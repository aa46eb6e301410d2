// Package webtest holds test helpers for package web. It imports package
// testing, so only _test.go files may import it: production packages must
// not (the .ci/deps.sh check fails if package testing reaches the elevid
// binary).
package webtest

import (
	"log/slog"
	"testing"

	"github.com/elevid/elevid/web"
)

// NewSite returns a web.Site with a discarding logger, failing t on error.
func NewSite(t testing.TB) *web.Site {
	t.Helper()
	s, err := web.New(web.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
