package enrolment

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/elevid/elevid/school"
)

// Alphabet is the 32 symbols enrolment codes are made of: Crockford's
// base32 (digits and upper-case letters without I, L, O and U). Typed
// look-alikes are mapped on input (O→0, I and L→1), so a code read from
// paper is not mistaken. A code has 12 symbols: 60 bits.
const Alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// CodeLength is the number of symbols in a code.
const CodeLength = 12

// NewCode returns a random enrolment code formatted XXXX-XXXX-XXXX.
func NewCode() string {
	var b strings.Builder
	buf := make([]byte, CodeLength)
	if _, err := rand.Read(buf); err != nil {
		panic(fmt.Sprintf("enrolment: crypto/rand failed: %v", err))
	}
	for i, v := range buf {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(Alphabet[v%32]) // 32 divides 256: no bias
	}
	return b.String()
}

// Normalize returns the canonical form of a typed code (upper case,
// without spaces and dashes, look-alikes mapped) and false when it cannot
// be a code.
func Normalize(s string) (string, bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch r {
		case ' ', '-', '\t', '.', '\u00a0':
			continue
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		if r > 127 || !strings.ContainsRune(Alphabet, r) {
			return "", false
		}
		b.WriteRune(r)
	}
	if b.Len() != CodeLength {
		return "", false
	}
	return b.String(), true
}

// Format returns a normalized code as XXXX-XXXX-XXXX.
func Format(norm string) string {
	if len(norm) != CodeLength {
		return norm
	}
	return norm[:4] + "-" + norm[4:8] + "-" + norm[8:]
}

// LocatorLength is how many leading characters of a code locate it.
const LocatorLength = 4

// Locator returns the leading characters of a normalized code, stored in
// clear so that a wrong attempt can be counted against the code (and the
// class) it aims at. The other 8 characters (40 bits) stay secret.
func Locator(norm string) string {
	if len(norm) < LocatorLength {
		return ""
	}
	return norm[:LocatorLength]
}

// CodePurpose names the key (derived from secrets.encryption_keys) that
// keys the stored form of enrolment codes.
const CodePurpose = "enrolment-code"

// Hash returns the stored form of a normalized code: HMAC-SHA256 under a
// server-side key derived from the encryption keys (school.Sealer.MAC),
// so that a leaked database alone does not give the codes up (60 bits
// would fall to an offline search of a plain hash).
func Hash(s *school.Sealer, norm string) []byte {
	return s.MAC(CodePurpose, []byte(norm))
}

// codeByHash finds the code norm under the current key and, during a key
// rotation, under the older ones.
func codeByHash(ctx context.Context, st school.Store, s *school.Sealer, norm string) (school.EnrolmentCode, error) {
	var err error
	for _, h := range s.MACs(CodePurpose, []byte(norm)) {
		var c school.EnrolmentCode
		c, err = st.EnrolmentCodeByHash(ctx, h)
		if !errors.Is(err, school.ErrNotFound) {
			return c, err
		}
	}
	return school.EnrolmentCode{}, err
}

// Issue makes a new enrolment code for an active pupil whose enrolment is
// allowed, stores its hash (superseding earlier unused codes), writes an
// audit entry for actor, and returns the code and its expiry. The code
// itself is never stored: print or show it now.
func (e *Enroller) Issue(ctx context.Context, pupilID, actor string) (string, time.Time, error) {
	code := NewCode()
	norm, _ := Normalize(code)
	var out school.EnrolmentCode
	err := e.opt.Store.InTx(ctx, func(q school.Queries) error {
		var err error
		out, err = q.CreateEnrolmentCode(ctx, school.EnrolmentCode{
			Hash: Hash(e.opt.Sealer, norm), Locator: Locator(norm), PupilID: pupilID, CreatedBy: actor, ExpiresAt: e.now().Add(e.opt.CodeTTL),
		})
		if err != nil {
			return err
		}
		_, err = q.AppendAudit(ctx, school.AuditEntry{
			SchoolID: out.SchoolID, Time: e.now(), ActorID: actor, Action: "enrolment.code_issue",
			SubjectID: pupilID, Detail: fmt.Sprintf(`{"expires":%q}`, out.ExpiresAt.Format(time.RFC3339)),
		})
		return err
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("enrolment: issue code: %w", err)
	}
	return code, out.ExpiresAt, nil
}

// ErrCode is wrapped by the errors of Check: the code is wrong, used or
// expired.
var ErrCode = errors.New("enrolment: code not usable")
