// Package transparency gives pupils and guardians their data rights
// (GDPR articles 5, 15, 17 and 25): the privacy notice generated from the
// instance's configuration, the timeline of who used a pupil's data
// (staff access and platform releases), the data export, and the retention
// job that erases what is no longer needed.
//
// It reads through school.Store only and imports neither parent nor
// enrollment, so idp's pupil pages may use it.
package transparency
