// Package testenv decides whether tests that need an external component
// (PostgreSQL, slapd, Chromium, xmlsec1, node) run or skip. Locally they
// skip with a message saying what to install; in CI (.ci/run sets
// ELEVID_TEST_REQUIRE to a comma-separated list, or "all") a missing
// component fails the test instead, so CI can never pass by skipping.
package testenv

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Required reports whether .ci/run demands component name. The list in
// ELEVID_TEST_REQUIRE is read leniently: entries are trimmed and compared
// without regard to case, so " All" or "Postgres, slapd" still demand.
func Required(name string) bool {
	for _, r := range strings.Split(os.Getenv("ELEVID_TEST_REQUIRE"), ",") {
		r = strings.TrimSpace(r)
		if strings.EqualFold(r, "all") || strings.EqualFold(r, name) {
			return true
		}
	}
	return false
}

// Unavailable skips t (or fails it when the component is required) with
// a message naming what is missing and how to provide it.
func Unavailable(t testing.TB, name, how string) {
	t.Helper()
	if Required(name) {
		t.Fatalf("%s is required here (ELEVID_TEST_REQUIRE) but unavailable: %s", name, how)
	}
	t.Skipf("%s unavailable, skipping: %s", name, how)
}

// Postgres returns the ELEVID_TEST_POSTGRES DSN or skips t.
func Postgres(t testing.TB) string {
	t.Helper()
	dsn := os.Getenv("ELEVID_TEST_POSTGRES")
	if dsn == "" {
		Unavailable(t, "postgres", "set ELEVID_TEST_POSTGRES to a DSN, e.g. postgres://postgres@127.0.0.1:5432/test")
	}
	return dsn
}

// Binary returns the path of an executable (the first of names found on
// PATH or as an absolute path) or skips t.
func Binary(t testing.TB, component string, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	Unavailable(t, component, "install "+strings.Join(names, " or ")+" (Debian: apt-get install "+component+")")
	return ""
}
