package release

import (
	"context"
	"fmt"

	"github.com/elevid/elevid/school"
)

// Log writes the release log the pupil and guardians read: one entry per
// ID token, userinfo response or SAML assertion, with attribute names
// only, never values (Via is "id_token" for OIDC platforms and
// "saml_assertion" for SAML platforms). Both protocols' release loggers
// are a Log.
type Log struct {
	Store school.Store
}

// Record appends one entry: platform platformID received attrs about the
// pupil now.
func (l Log) Record(ctx context.Context, pupilID, platformID string, attrs []string) error {
	pf, err := l.Store.GetPlatform(ctx, platformID)
	if err != nil {
		return fmt.Errorf("release log: %w", err)
	}
	via := "id_token"
	if pf.Protocol == school.ProtocolSAML {
		via = "saml_assertion"
	}
	_, err = l.Store.AddRelease(ctx, school.Release{PupilID: pupilID, PlatformID: pf.ID, PlatformName: pf.Name, Protocol: pf.Protocol, Via: via, Claims: attrs})
	return err
}
