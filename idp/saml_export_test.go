package idp

import "context"

// SignedResponseForBench builds one signed (per the platform's settings)
// Response for a pupil, without HTTP or store writes: the signing cost.
func (s *SAML) SignedResponseForBench(ctx context.Context, platformID, pupilID string) ([]byte, error) {
	sp, err := s.spByID(ctx, platformID)
	if err != nil {
		return nil, err
	}
	p, err := s.opt.Store.GetPupil(ctx, pupilID)
	if err != nil {
		return nil, err
	}
	sch, err := s.opt.Store.GetSchool(ctx, p.SchoolID)
	if err != nil {
		return nil, err
	}
	pairwise := Pairwise(s.opt.PairwiseSecret, p.ID, sp.Platform.ClientID)
	attrs, _ := s.attributes(sp, p, sch, []string{"7A"}, pairwise)
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
