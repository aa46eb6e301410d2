package saml

import (
	"context"

	"github.com/crewjam/saml"
	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
)

// SignedResponseForBench builds one signed (per the platform's settings)
// Response for a pupil, without HTTP or store writes: the signing cost.
func (s *IdP) SignedResponseForBench(ctx context.Context, platformID, pupilID string) ([]byte, error) {
	sp, err := s.spByID(ctx, platformID)
	if err != nil {
		return nil, err
	}
	profile, err := s.opt.Store.GetPupilProfile(ctx, pupilID)
	if err != nil {
		return nil, err
	}
	profile.Classes = []school.Class{{Name: "7A"}}
	// Every registered attribute, as if consent covered them all.
	all := school.ConsentState{PupilStatus: school.PupilActive, Enrolment: school.EnrolmentEnrolled, Rule: school.ConsentNone, Activated: true}
	rel, err := release.Compute(release.Input{Profile: profile, Platform: sp.Platform, State: all, PairwiseSecret: s.opt.PairwiseSecret, Sector: sp.Platform.ClientID})
	if err != nil {
		return nil, err
	}
	pairwise := rel.Pairwise
	attrs, _ := Attributes(s.entityID, sp.Platform, rel)
	pair, err := s.opt.Keys.Signing(ctx)
	if err != nil {
		return nil, err
	}
	return s.buildResponse(pair, responseInput{
		Now: s.now(), SP: sp, ACS: sp.Settings.ACS[0].Location, InResponseTo: randomID(),
		NameID: samlNameIDForBench(s.entityID, sp.Platform.ClientID, pairwise), SessionIndex: randomID(),
		AuthTime: s.now(), Attributes: attrs,
	})
}

// samlNameIDForBench is the pairwise persistent NameID of a response.
func samlNameIDForBench(idpEntity, spEntity, value string) saml.NameID {
	return saml.NameID{Format: string(saml.PersistentNameIDFormat), NameQualifier: idpEntity, SPNameQualifier: spEntity, Value: value}
}

// SealSSOFlowPurpose is the Sealer context of sealed SSO flows.
const SealSSOFlowPurpose = sealSSOFlow
