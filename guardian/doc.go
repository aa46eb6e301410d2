// Package guardian is the guardian's side of ElevID.
//
//   - Consent (requests.go, service.go, handlers.go): Requests, the
//     enrolment flows' ConsentRequester, sends the guardians a consent
//     request through the mail outbox, with a single-use, expiring link to
//     /consent/{token}. Service (built on those flows) serves the rest.
//     There a guardian decides per platform and per attribute (a grant may
//     refuse attributes a platform added later while the rest stands);
//     Decide records it, once per link. When configured, the guardian
//     first verifies their identity at an external OpenID provider (e.g. a
//     national eID broker) and the consent records the verified identity
//     (verify.go).
//   - The guardian's page (/guardian; guardianpage.go, signin.go,
//     withdraw.go): a magic link by e-mail signs a guardian in
//     (RequestGuardianLink, SignIn; a guardian session of package session:
//     kind guardian in the store's sessions, its id in a signed cookie); the
//     page shows each child's consents and what was released, and
//     withdraws consent per platform (Withdraw). PupilView and
//     /me/consents give the pupil the same view, read-only.
//   - Platforms (platforms.go): a school activating or deactivating a
//     platform (SetPlatformActivation), and a platform whose registered
//     attributes change (PlatformChanged): new attributes need a new
//     consent (a consent-addition mail), removed ones stop at once.
//   - The teacher-verified passkey reset (ResetPasskeys, reset.go):
//     revokes the pupil's passkeys and sessions, issues a new enrolment
//     code and tells the guardians by e-mail, in one transaction.
//   - Mail (mail.go, sender.go, mail/): the Danish/English templates, and
//     the Sender that delivers the outbox over SMTP with retries and
//     backoff.
//
// Whatever a withdrawal, a reset or a platform change ends (sessions,
// tokens, platforms' sessions, with logout notices) it ends through the
// access service (school/access) in the same transaction. It reads and
// writes through school.Store and uses enrolment's flows; it never
// imports idp, nor idp it.
package guardian
