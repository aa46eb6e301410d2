package idp

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"fmt"

	"github.com/elevid/elevid/school"
)

// pairwiseEncoding is lower-case base32 without padding: letters and digits
// only, so a pairwise value is also a valid SAML pairwise-id unique part.
var pairwiseEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// Pairwise returns the pairwise subject of a pupil at a sector (an OIDC
// sector identifier or a SAML service provider's entity id): lower-case
// base32 of HMAC-SHA256(secret, pupilID NUL sector). The same inputs always
// give the same value; different sectors cannot correlate their values
// without the secret.
func Pairwise(secret []byte, pupilID, sector string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(pupilID))
	m.Write([]byte{0})
	m.Write([]byte(sector))
	return pairwiseEncoding.EncodeToString(m.Sum(nil))
}

// PairwiseSecretSetting is the SettingStore key of the instance's pairwise
// subject secret.
const PairwiseSecretSetting = "idp.pairwise_secret"

// PairwiseSecret returns the instance's pairwise secret, generating and
// storing it at first use (the first node to start wins). The secret must
// never change: every pairwise subject depends on it.
func PairwiseSecret(ctx context.Context, st school.SettingStore) ([]byte, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	v, err := st.EnsureSetting(ctx, PairwiseSecretSetting, b)
	if err != nil {
		return nil, fmt.Errorf("pairwise secret: %w", err)
	}
	if len(v) < 32 {
		return nil, fmt.Errorf("pairwise secret: stored value is %d bytes, want 32", len(v))
	}
	return v, nil
}
