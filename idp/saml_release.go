package idp

import (
	"context"

	"github.com/elevid/elevid/school"
)

// SAMLReleaseLog is the SAMLReleaseLogger that writes each assertion to
// the release log the pupil and guardians read (the same log as OIDC's
// ID tokens and userinfo responses). It records attribute names only,
// never values.
type SAMLReleaseLog struct {
	Store school.Store
}

// Record implements SAMLReleaseLogger.
func (l SAMLReleaseLog) Record(ctx context.Context, pupilID, platformID string, attrs []string) error {
	p, err := l.Store.GetPlatform(ctx, platformID)
	if err != nil {
		return err
	}
	_, err = l.Store.AddRelease(ctx, school.Release{PupilID: pupilID, PlatformID: platformID, PlatformName: p.Name,
		Protocol: school.ProtocolSAML, Via: "saml_assertion", Claims: attrs})
	return err
}
