package release

import (
	"context"
	"fmt"

	"github.com/elevid/elevid/school"
)

// Log writes the release log the pupil and guardians read: one entry per
// ID token, userinfo response or SAML assertion, with attribute names
// only, never values (Via is "id_token" for OIDC platforms and
// "saml_assertion" for SAML platforms). The OIDC token endpoint and the
// SAML IdP both write their entries through a Log, each in the
// transaction that issues what the entry records.
type Log struct{}

// Record appends one entry through q (so it commits with the caller's
// transaction): platform pf received attrs about the pupil now.
func (Log) Record(ctx context.Context, q school.Queries, pupilID string, pf school.Platform, attrs []string) error {
	via := "id_token"
	if pf.Protocol == school.ProtocolSAML {
		via = "saml_assertion"
	}
	if _, err := q.AddRelease(ctx, school.Release{PupilID: pupilID, PlatformID: pf.ID, PlatformName: pf.Name, Protocol: pf.Protocol, Via: via, Claims: attrs}); err != nil {
		return fmt.Errorf("release log: %w", err)
	}
	return nil
}
