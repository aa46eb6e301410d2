package console

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"fmt"
	"image/png"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/elevid/elevid/school"
)

// TOTP parameters: the common authenticator-app defaults (RFC 6238,
// SHA-1, 6 digits, 30 s), which every app supports.
const (
	totpPeriod = 30
	totpSkew   = 1 // steps accepted either side of now
	totpIssuer = "ElevID"
)

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// sealTOTPContext binds a sealed TOTP secret to its staff member.
func sealTOTPContext(staffID string) string { return "totp:" + staffID }

// NewTOTPKey returns a new random TOTP key for account (the username).
func NewTOTPKey(account string) (*otp.Key, error) {
	return totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: account, Period: totpPeriod, SecretSize: 20, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// TOTPKeyFromSecret rebuilds the key of a base32 secret, for showing the
// otpauth URL of a known secret (the demo teacher).
func TOTPKeyFromSecret(account, secret string) (*otp.Key, error) {
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		return nil, fmt.Errorf("console: TOTP secret is not base32: %w", err)
	}
	return totp.Generate(totp.GenerateOpts{Issuer: totpIssuer, AccountName: account, Period: totpPeriod, Secret: raw, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// TOTPCode returns the code of secret at t (tests and the demo use it).
func TOTPCode(secret string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secret, t, totpOpts)
}

// QRDataURI renders the key's otpauth URL as a PNG QR code in a data:
// URI (the CSP allows data: images; nothing leaves the server).
func QRDataURI(k *otp.Key, size int) (string, error) {
	img, err := k.Image(size, size)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

// matchTOTP returns the time step whose code equals code, within the
// allowed skew around now, comparing in constant time; ok is false when
// none matches. Steps at or before lastStep are not considered: a code is
// single-use within its window.
func matchTOTP(secret, code string, now time.Time, lastStep int64) (step int64, ok bool) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return 0, false
	}
	cur := now.Unix() / totpPeriod
	found := int64(0)
	for s := cur - totpSkew; s <= cur+totpSkew; s++ {
		want, err := totp.GenerateCodeCustom(secret, time.Unix(s*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 && s > lastStep && found == 0 {
			found = s
		}
	}
	return found, found != 0
}

// recoveryAlphabet is lower-case base32 without look-alikes.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// RecoveryCodeCount is how many recovery codes a staff member gets.
const RecoveryCodeCount = 10

// newRecoveryCodes returns RecoveryCodeCount fresh codes (xxxxx-xxxxx,
// about 50 bits each) and their stored forms (recoveryHash).
func newRecoveryCodes(sealer *school.Sealer) ([]string, [][]byte) {
	codes := make([]string, RecoveryCodeCount)
	hashes := make([][]byte, RecoveryCodeCount)
	for i := range codes {
		buf := make([]byte, 10)
		if _, err := rand.Read(buf); err != nil {
			panic(fmt.Sprintf("console: crypto/rand failed: %v", err))
		}
		var b strings.Builder
		for j, v := range buf {
			if j == 5 {
				b.WriteByte('-')
			}
			b.WriteByte(recoveryAlphabet[int(v)%len(recoveryAlphabet)])
		}
		codes[i] = b.String()
		hashes[i] = sealer.MAC(recoveryPurpose, []byte(normRecovery(codes[i])))
	}
	return codes, hashes
}

// recoveryPurpose names the key (derived from secrets.encryption_keys)
// that keys the stored form of recovery codes: HMAC-SHA256, so that a
// leaked database alone does not give the 50-bit codes up. Codes stored
// before (plain SHA-256) were removed by migration 00015: those staff set
// up their authenticator again to get new ones.
const recoveryPurpose = "staff-recovery-code"

func normRecovery(code string) string {
	return strings.ToLower(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
}

// recoveryMatch returns the index in stored of code's stored form under
// any of the sealer's keys, or -1.
func recoveryMatch(sealer *school.Sealer, stored [][]byte, code string) int {
	for _, h := range sealer.MACs(recoveryPurpose, []byte(normRecovery(code))) {
		for i, rh := range stored {
			if hmac.Equal(rh, h) {
				return i
			}
		}
	}
	return -1
}

// looksLikeRecovery reports whether code has the shape of a recovery code.
func looksLikeRecovery(code string) bool {
	c := strings.ReplaceAll(strings.TrimSpace(code), "-", "")
	return len(c) == 10
}
