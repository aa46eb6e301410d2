// Package web is ElevID's web layer shared by every handler: embedded
// templates, static files (CSS and our own small JavaScript; no CDN) and
// Danish and English texts, parsed once at start-up; the Site renderer
// with one place that maps errors to pages; and the middleware every
// request passes (security headers, cross-origin protection, body limits,
// metrics, logging, panic recovery).
//
// It knows nothing of pupils, platforms or protocols; packages idp,
// enrolment and guardian render their pages through it.
package web
