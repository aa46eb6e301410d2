package web

import (
	"strings"
	"unicode/utf8"
)

// N returns the text for key in lang for the number n, formatted with
// args: key+".zero" when n is 0 and that text exists, key+".one" when n is
// 1 and it exists, else key+".other" when it exists, else key. Danish and
// English both have one singular ("1 elev", "1 pupil").
func (s *Site) N(lang, key string, n int, args ...any) string {
	switch {
	case n == 0 && s.HasText(key+".zero"):
		key += ".zero"
	case n == 1 && s.HasText(key+".one"):
		key += ".one"
	case s.HasText(key + ".other"):
		key += ".other"
	}
	if !strings.Contains(s.T(lang, key), "%") {
		return s.T(lang, key) // a form without the number ("ingen platforme")
	}
	return s.T(lang, key, args...)
}

// Genitive returns the possessive of a name: Danish adds -s without an
// apostrophe ("Frejas"), or only an apostrophe after s, x and z ("Jonas'");
// English adds 's ("Freja's"), or only an apostrophe after s ("Jonas'").
func Genitive(lang, name string) string {
	name = strings.TrimSpace(name)
	if name == "" {
		return name
	}
	last, _ := utf8.DecodeLastRuneInString(strings.ToLower(name))
	if lang == "da" {
		if last == 's' || last == 'x' || last == 'z' {
			return name + "'"
		}
		return name + "s"
	}
	if last == 's' {
		return name + "'"
	}
	return name + "'s"
}

// N is Site.N in the page's language.
func (p Page) N(key string, n int, args ...any) string { return p.site.N(p.Lang, key, n, args...) }

// Gen is Genitive in the page's language.
func (p Page) Gen(name string) string { return Genitive(p.Lang, name) }

// Has reports whether key is a defined text.
func (p Page) Has(key string) bool { return p.site.HasText(key) }

// TOr returns the text for key, or when key is not defined the text for
// fallback formatted with args (e.g. a sentence for a logged action, or a
// generic one naming it).
func (p Page) TOr(key, fallback string, args ...any) string {
	if p.site.HasText(key) {
		return p.site.T(p.Lang, key)
	}
	return p.site.T(p.Lang, fallback, args...)
}
