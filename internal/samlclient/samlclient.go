package samlclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/descope/virtualwebauthn"
)

// Pupil is an enrolled pupil's passkey: the WebAuthn user handle and the
// credential (with its private key).
type Pupil struct {
	Handle     []byte
	Credential virtualwebauthn.Credential
}

// Page is where the browser stopped: a page that is neither a redirect
// nor a form that posts itself.
type Page struct {
	URL    string
	Status int
	Body   string
}

// Post is a form the browser sent: the SAML messages it carried.
type Post struct {
	Action string
	Form   url.Values
}

// Browser is one pupil's browser. It is not safe for concurrent use.
type Browser struct {
	idp    string // ElevID's base URL
	rp     virtualwebauthn.RelyingParty
	pupil  Pupil
	client *http.Client
	// Posts are the forms the browser has posted, in order.
	Posts []Post
}

// New returns a browser with an empty cookie jar for pupil, logging in at
// ElevID (base URL idp) whose WebAuthn RP ID and origin are rpID and
// origin.
func New(idp, rpID, origin string, pupil Pupil) *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{
		idp:   strings.TrimSuffix(idp, "/"),
		rp:    virtualwebauthn.RelyingParty{ID: rpID, Name: "ElevID", Origin: origin},
		pupil: pupil,
		client: &http.Client{Jar: jar, Timeout: 20 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
	}
}

var (
	formRE  = regexp.MustCompile(`<form method="post" action="([^"]+)" id="([^"]+)">`)
	inputRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
)

// autoForm is the id of ElevID's form that posts itself (auto-post.js).
const autoForm = "auto-post-form"

// Visit opens u and follows the browser's way on: redirects, ElevID's
// auto-posted SAML forms and ElevID's passkey login. It returns the first
// page that is none of these.
func (b *Browser) Visit(ctx context.Context, u string) (Page, error) {
	return b.follow(ctx, http.MethodGet, u, nil)
}

// Submit presses the button of the form with id formID on page p (as the
// pupil does on ElevID's refusal page) and follows on as Visit does.
func (b *Browser) Submit(ctx context.Context, p Page, formID string) (Page, error) {
	action, form, ok := findForm(p.Body, formID)
	if !ok {
		return Page{}, fmt.Errorf("no form %q on %s", formID, p.URL)
	}
	return b.post(ctx, action, form)
}

func (b *Browser) post(ctx context.Context, action string, form url.Values) (Page, error) {
	b.Posts = append(b.Posts, Post{Action: action, Form: form})
	return b.follow(ctx, http.MethodPost, action, form)
}

// findForm returns the action and hidden fields of the form with id id.
func findForm(body, id string) (string, url.Values, bool) {
	for _, m := range formRE.FindAllStringSubmatchIndex(body, -1) {
		if body[m[4]:m[5]] != id {
			continue
		}
		rest := body[m[1]:]
		if end := strings.Index(rest, "</form>"); end >= 0 {
			rest = rest[:end]
		}
		form := url.Values{}
		for _, in := range inputRE.FindAllStringSubmatch(rest, -1) {
			form.Add(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
		}
		return html.UnescapeString(body[m[2]:m[3]]), form, true
	}
	return "", nil, false
}

func (b *Browser) follow(ctx context.Context, method, u string, form url.Values) (Page, error) {
	for range 20 {
		if pu, err := url.Parse(u); err == nil && strings.HasPrefix(u, b.idp+"/") && pu.Path == "/login" {
			next, err := b.passkeyLogin(ctx, pu.Query().Get("return_to"))
			if err != nil {
				return Page{}, err
			}
			method, u, form = http.MethodGet, b.idp+next, nil
			continue
		}
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, u, body)
		if err != nil {
			return Page{}, err
		}
		req.Header.Set("Accept", "text/html,*/*")
		req.Header.Set("Accept-Language", "da")
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := b.client.Do(req)
		if err != nil {
			return Page{}, err
		}
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		resp.Body.Close()
		if err != nil {
			return Page{}, err
		}
		if resp.StatusCode/100 == 3 && resp.Header.Get("Location") != "" {
			loc, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
			if err != nil {
				return Page{}, err
			}
			method, u, form = http.MethodGet, loc.String(), nil
			continue
		}
		page := Page{URL: u, Status: resp.StatusCode, Body: string(raw)}
		if action, f, ok := findForm(page.Body, autoForm); ok && strings.HasPrefix(u, b.idp+"/") {
			b.Posts = append(b.Posts, Post{Action: action, Form: f})
			method, u, form = http.MethodPost, action, f
			continue
		}
		return page, nil
	}
	return Page{}, errors.New("too many redirects")
}

// passkeyLogin signs the pupil in at ElevID (/login/begin, /login/finish)
// and returns where ElevID sends the browser next.
func (b *Browser) passkeyLogin(ctx context.Context, returnTo string) (string, error) {
	call := func(path string, in, out any) error {
		body, _ := json.Marshal(in)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, b.idp+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := b.client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d: %.300s", path, resp.StatusCode, raw)
		}
		return json.Unmarshal(raw, out)
	}
	var begun struct {
		Ceremony string          `json:"ceremony"`
		Options  json.RawMessage `json:"options"`
	}
	if err := call("/login/begin", map[string]string{}, &begun); err != nil {
		return "", err
	}
	opts, err := virtualwebauthn.ParseAssertionOptions(string(begun.Options))
	if err != nil {
		return "", err
	}
	auth := virtualwebauthn.NewAuthenticatorWithOptions(virtualwebauthn.AuthenticatorOptions{UserHandle: b.pupil.Handle})
	cred := virtualwebauthn.CreateAssertionResponse(b.rp, auth, b.pupil.Credential, *opts)
	var done struct {
		OK   bool   `json:"ok"`
		Next string `json:"next"`
	}
	if err := call("/login/finish", map[string]any{"ceremony": begun.Ceremony, "credential": json.RawMessage(cred), "return_to": returnTo}, &done); err != nil {
		return "", err
	}
	if !done.OK || !strings.HasPrefix(done.Next, "/") {
		return "", fmt.Errorf("login finish: ok %t, next %q", done.OK, done.Next)
	}
	return done.Next, nil
}
