package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters of new password hashes.
// Stored hashes carry their own parameters, so raising these re-hashes
// nothing but applies to every password set afterwards.
type Argon2Params struct {
	Memory  uint32 // KiB
	Time    uint32
	Threads uint8
}

// DefaultArgon2 follows the OWASP minimum for argon2id (19 MiB, 2
// iterations, 1 thread): about 70 ms per hash on the shared 2-core
// development machine.
var DefaultArgon2 = Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1}

// HashPassword returns the argon2id PHC string of password with a fresh
// 16-byte salt: $argon2id$v=19$m=…,t=…,p=…$salt$hash.
func HashPassword(password string, p Argon2Params) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic(fmt.Sprintf("console: crypto/rand failed: %v", err))
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

var errPHC = errors.New("console: not an argon2id PHC string")

// VerifyPassword reports whether password matches the PHC string phc, in
// constant time. A malformed or empty phc never matches.
func VerifyPassword(phc, password string) bool {
	p, salt, want, err := parsePHC(phc)
	if err != nil {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

func parsePHC(phc string) (Argon2Params, []byte, []byte, error) {
	var p Argon2Params
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, errPHC
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, errPHC
	}
	// Bound the cost a stored hash can ask for, so a bad row cannot make a
	// sign-in allocate gigabytes.
	if p.Memory < 8 || p.Memory > 1<<20 || p.Time < 1 || p.Time > 20 || p.Threads < 1 {
		return p, nil, nil, errPHC
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	key, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(salt) < 8 || len(key) < 16 {
		return p, nil, nil, errPHC
	}
	return p, salt, key, nil
}

// passwordAlphabet has no look-alikes (no 0/O, 1/l/I).
const passwordAlphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// NewPassword returns a random one-time password of 20 characters from
// an unambiguous alphabet (about 115 bits), grouped for reading aloud.
func NewPassword() string {
	var b strings.Builder
	buf := make([]byte, 20)
	if _, err := rand.Read(buf); err != nil {
		panic(fmt.Sprintf("console: crypto/rand failed: %v", err))
	}
	for i, v := range buf {
		if i > 0 && i%5 == 0 {
			b.WriteByte('-')
		}
		// 56 symbols: the modulo bias (256 mod 56 = 32) costs < 0.2 bits per symbol.
		b.WriteByte(passwordAlphabet[int(v)%len(passwordAlphabet)])
	}
	return b.String()
}

// MinPasswordLength is the shortest password staff may choose.
const MinPasswordLength = 12
