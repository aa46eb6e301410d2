package web

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	_ "time/tzdata" // the time zone works without the system's zoneinfo
)

//go:embed templates static texts
var assets embed.FS

// Languages are the languages of every text, the first being the default.
var Languages = []string{"da", "en"}

// Options configure a Site.
type Options struct {
	Logger *slog.Logger
	// Demo marks every page as belonging to a demo instance.
	Demo bool
	// Product is shown in titles; "ElevID" when empty.
	Product string
	// TimeZone is where times are shown (Europe/Copenhagen when nil).
	TimeZone *time.Location
}

// Site renders pages. It is built once at start-up; a template or text
// error fails New, never a request.
type Site struct {
	opt   Options
	log   *slog.Logger
	pages map[string]*template.Template
	texts map[string]map[string]string // key → lang → text
	loc   *time.Location
}

// New parses every template and loads every text.
func New(opt Options) (*Site, error) {
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Product == "" {
		opt.Product = "ElevID"
	}
	s := &Site{opt: opt, log: opt.Logger, pages: map[string]*template.Template{}, loc: opt.TimeZone}
	var err error
	if s.loc == nil {
		if s.loc, err = time.LoadLocation(DefaultTimeZone); err != nil {
			return nil, fmt.Errorf("web: time zone: %w", err)
		}
	}
	if s.texts, err = loadTexts(assets); err != nil {
		return nil, err
	}
	funcs := template.FuncMap{
		"join": strings.Join,
		"add":  func(a, b int) int { return a + b },
	}
	base, err := template.New("base.html").Funcs(funcs).ParseFS(assets, "templates/layout/*.html")
	if err != nil {
		return nil, fmt.Errorf("web: layout: %w", err)
	}
	files, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		t, err := template.Must(base.Clone()).ParseFS(assets, f)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", f, err)
		}
		s.pages[strings.TrimSuffix(path.Base(f), ".html")] = t
	}
	return s, nil
}

// Static returns the handler for /static/.
func Static() http.Handler {
	sub, _ := fs.Sub(assets, "static")
	fsrv := http.StripPrefix("/static/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		fsrv.ServeHTTP(w, r)
	})
}

func loadTexts(fsys fs.FS) (map[string]map[string]string, error) {
	files, err := fs.Glob(fsys, "texts/*.json")
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]string{}
	var problems []string
	for _, f := range files {
		b, err := fs.ReadFile(fsys, f)
		if err != nil {
			return nil, err
		}
		var m map[string]map[string]string
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("web: texts %s: %w", f, err)
		}
		for k, v := range m {
			if _, dup := out[k]; dup {
				problems = append(problems, fmt.Sprintf("%s: key %q defined twice", f, k))
			}
			for _, l := range Languages {
				if strings.TrimSpace(v[l]) == "" {
					problems = append(problems, fmt.Sprintf("%s: key %q has no %q text", f, k, l))
				}
			}
			out[k] = v
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("web: texts:\n  %s", strings.Join(problems, "\n  "))
	}
	return out, nil
}

// T returns the text for key in lang, formatted with args. An unknown key
// is returned as itself, so a missing text shows but never breaks a page.
func (s *Site) T(lang, key string, args ...any) string {
	v, ok := s.texts[key]
	if !ok {
		return key
	}
	txt, ok := v[lang]
	if !ok {
		txt = v[Languages[0]]
	}
	if len(args) > 0 {
		return fmt.Sprintf(txt, args...)
	}
	return txt
}

// AttrName returns an attribute's name in plain words in lang (texts
// attr.NAME, or attr.shared.NAME for the shared form of an identifier);
// an attribute without a text is shown by its technical name.
func (s *Site) AttrName(lang, name string, shared bool) string {
	return attrName(s.texts, lang, name, shared)
}

func attrName(texts map[string]map[string]string, lang, name string, shared bool) string {
	keys := []string{"attr." + name}
	if shared {
		keys = append([]string{"attr.shared." + name}, keys...)
	}
	for _, k := range keys {
		if v, ok := texts[k]; ok {
			if t, ok := v[lang]; ok {
				return t
			}
			return v[Languages[0]]
		}
	}
	return name
}

var embeddedTexts = sync.OnceValues(func() (map[string]map[string]string, error) { return loadTexts(assets) })

// AttrLabel is Site.AttrName without a Site, from the embedded texts (for
// documents such as the data export).
func AttrLabel(lang, name string, shared bool) string {
	texts, err := embeddedTexts()
	if err != nil {
		return name
	}
	return attrName(texts, lang, name, shared)
}

// HasText reports whether key is a defined text.
func (s *Site) HasText(key string) bool { _, ok := s.texts[key]; return ok }

// Lang returns the language for r: the `lang` cookie when set to a known
// language, else the best match of Accept-Language, else Danish.
func Lang(r *http.Request) string {
	if c, err := r.Cookie("lang"); err == nil && slices.Contains(Languages, c.Value) {
		return c.Value
	}
	best, bestQ := Languages[0], -1.0
	for part := range strings.SplitSeq(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		primary, _, _ := strings.Cut(strings.ToLower(tag), "-")
		if primary == "nb" || primary == "nn" || primary == "no" || primary == "sv" {
			primary = "da" // Scandinavian readers get Danish before English
			q -= 0.001
		}
		if slices.Contains(Languages, primary) && q > bestQ {
			best, bestQ = primary, q
		}
	}
	return best
}

// Page is what every template receives.
type Page struct {
	Lang  string
	Langs []string
	Path  string
	Demo  bool
	Data  any
	site  *Site
}

// T returns the text for key in the page's language.
func (p Page) T(key string, args ...any) string { return p.site.T(p.Lang, key, args...) }

// Attr returns an attribute's name in plain words in the page's language
// (Site.AttrName).
func (p Page) Attr(name string, shared bool) string { return p.site.AttrName(p.Lang, name, shared) }

// AttrList returns the plain-word names of attributes (as a release log
// entry lists them), each once, joined with commas.
func (p Page) AttrList(names []string) string {
	var out []string
	for _, n := range names {
		if h := p.site.AttrName(p.Lang, n, false); !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	return strings.Join(out, ", ")
}

// Render renders page with data and status. The page is rendered to a
// buffer first, so a failing template yields a clean 500, not half a page.
func (s *Site) Render(w http.ResponseWriter, r *http.Request, status int, page string, data any) {
	t, ok := s.pages[page]
	if !ok {
		s.ServerError(w, r, fmt.Errorf("web: no page %q", page))
		return
	}
	p := Page{Lang: Lang(r), Langs: Languages, Path: r.URL.RequestURI(), Demo: s.opt.Demo, Data: data, site: s}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "base.html", p); err != nil {
		if page == "error" {
			http.Error(w, "internal error", http.StatusInternalServerError)
			s.log.Error("render error page", "err", err)
			return
		}
		s.ServerError(w, r, fmt.Errorf("render %s: %w", page, err))
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", p.Lang)
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// ErrorData is the data of the error page.
type ErrorData struct {
	Status    int
	Message   string
	Reference string
}

// Error renders the error page with status and the translated message
// msgKey. Nothing but the translated text reaches the user.
func (s *Site) Error(w http.ResponseWriter, r *http.Request, status int, msgKey string) {
	s.Render(w, r, status, "error", ErrorData{Status: status, Message: s.T(Lang(r), msgKey)})
}

// ServerError logs err with a fresh reference id and renders a 500 page
// that shows only that id.
func (s *Site) ServerError(w http.ResponseWriter, r *http.Request, err error) {
	ref := newReference()
	s.log.Error("request failed", "ref", ref, "method", r.Method, "path", r.URL.Path, "err", err)
	s.Render(w, r, http.StatusInternalServerError, "error", ErrorData{
		Status: http.StatusInternalServerError, Message: s.T(Lang(r), "error.internal"), Reference: ref,
	})
}

// JSONError answers a JSON request (the passkey ceremonies of login,
// enrolment and the console) with status and the body
// {"ok": false, "error": the translated msgKey, "ref": a fresh reference
// id}, and logs the request, msgKey and detail (which may be nil) under
// the same reference id: at level Error for a 5xx status, else Info. The
// user sees only the translated text and the id; the log gets the detail.
func (s *Site) JSONError(w http.ResponseWriter, r *http.Request, status int, msgKey string, detail error) {
	ref := newReference()
	level := slog.LevelInfo
	if status >= http.StatusInternalServerError {
		level = slog.LevelError
	}
	args := []any{"ref", ref, "status", status, "key", msgKey, "method", r.Method, "path", r.URL.Path}
	if detail != nil {
		args = append(args, "err", detail)
	}
	s.log.Log(r.Context(), level, "request refused", args...)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(jsonError{Error: s.T(Lang(r), msgKey), Ref: ref})
}

// jsonError is the body JSONError writes. OK is always false; it is
// there for clients that test it.
type jsonError struct {
	OK    bool   `json:"ok"`
	Error string `json:"error"`
	Ref   string `json:"ref"`
}

// newReference returns a fresh, random 12-hex-digit reference id that
// ties what a user sees to a log line.
func newReference() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NotFound renders the translated 404 page.
func (s *Site) NotFound(w http.ResponseWriter, r *http.Request) {
	s.Error(w, r, http.StatusNotFound, "error.not_found")
}

// IsLanguage reports whether lang is one of Languages.
func IsLanguage(lang string) bool { return slices.Contains(Languages, lang) }
