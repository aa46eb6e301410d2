package release

import (
	"context"
	"crypto/rand"
	"fmt"

	"github.com/elevid/elevid/school"
)

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
