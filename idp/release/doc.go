// Package release decides what a learning platform may receive about a
// pupil, for both protocols: the platform's allowed attributes ∩ what a
// current guardian consent covers ∩ the school's activation of the
// platform, with pairwise identifiers by default. OpenID Connect claims and
// SAML attributes are both built from Compute's output, so one pupil at
// one platform gets the same values over either protocol. The package
// also keeps the instance's pairwise secret (PairwiseSecret) and writes
// the release log the pupil and guardians read (Log), for both protocols.
//
// It depends on package school only (consent is read through the Store
// into a school.ConsentState); never on guardian, enrolment or the protocol
// packages.
package release
