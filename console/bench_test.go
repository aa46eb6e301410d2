package console_test

import (
	"testing"

	"github.com/elevid/elevid/console"
)

// BenchmarkArgon2Default measures one sign-in's password check at the
// production cost.
func BenchmarkArgon2Default(b *testing.B) {
	h := console.HashPassword("correct horse battery", console.DefaultArgon2)
	for b.Loop() {
		console.VerifyPassword(h, "correct horse battery")
	}
}
