// Package parent is the guardian's side of ElevID: consent requests sent
// by e-mail through a transactional outbox with single-use, expiring magic
// links; the consent page where a guardian approves, denies or later
// withdraws; and the guardian's view of what was released about their
// child. When configured, guardians verify their identity at an external
// OpenID provider (e.g. a national eID broker) from the consent page, and
// the consent records the verified identity (verify.go). It reads and
// writes through school.Store; what a withdrawal ends (sessions, tokens,
// platforms' sessions, with logout notices) it ends through the access
// service (school/access) in the same transaction. It never imports idp,
// nor idp it.
package parent
