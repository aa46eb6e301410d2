// Package transparency gives pupils and guardians their data rights
// (GDPR articles 5, 15, 17 and 25):
//
//   - Privacy (privacy.go) serves the privacy notice at /privacy in Danish
//     and English, generated from the instance's configuration (privacy.*,
//     retention.*) and the registered platforms, with the recorded
//     justification of every attribute.
//   - Rights (timeline.go) serves /rights/{pupil}/timeline and
//     /rights/{pupil}/export to the pupil and the pupil's guardians only:
//     Timeline merges the access log (staff reads and changes, with their
//     purpose) with the release log (which platform received which
//     attributes) into readable lines.
//   - BuildExport (export.go) is the data export (right of access), the
//     "elevid-export/1" JSON document, also used by the console and
//     `elevid admin export`.
//   - Job (retention.go) is the retention job in `elevid serve`: one node
//     at a time (a lease in the store), in batches that each commit with
//     an audit entry, it deletes what is due under Retention; before a
//     pupil is erased, the pupil's access ends through school/access.
//
// It reads through school.Store only and imports neither guardian nor
// enrolment, so idp's pupil pages may use it.
package transparency
