package web

import (
	"fmt"
	"time"
)

// DefaultTimeZone is the zone times are shown in when none is configured.
const DefaultTimeZone = "Europe/Copenhagen"

var monthsDA = []string{"jan.", "feb.", "mar.", "apr.", "maj", "jun.", "jul.", "aug.", "sep.", "okt.", "nov.", "dec."}

// FormatTime writes t in the site's time zone in the one format of lang:
// "5. dec. 2026 kl. 21.16" (da) or "5 Dec 2026, 21:16" (en). A zero time
// is "–".
func (s *Site) FormatTime(lang string, t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	t = t.In(s.loc)
	if lang == "da" {
		return fmt.Sprintf("%s kl. %s", s.FormatDate(lang, t), t.Format("15.04"))
	}
	return s.FormatDate(lang, t) + ", " + t.Format("15:04")
}

// FormatDate writes the day of t in the site's time zone: "5. dec. 2026"
// (da) or "5 Dec 2026" (en). A zero time is "–".
func (s *Site) FormatDate(lang string, t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	t = t.In(s.loc)
	if lang == "da" {
		return fmt.Sprintf("%d. %s %d", t.Day(), monthsDA[t.Month()-1], t.Year())
	}
	return t.Format("2 Jan 2006")
}

// Location is the time zone the site shows times in.
func (s *Site) Location() *time.Location { return s.loc }

// Time formats t as date and time in the page's language and the site's
// time zone (see Site.FormatTime).
func (p Page) Time(t time.Time) string { return p.site.FormatTime(p.Lang, t) }

// Date formats the day of t in the page's language and the site's time
// zone (see Site.FormatDate).
func (p Page) Date(t time.Time) string { return p.site.FormatDate(p.Lang, t) }
