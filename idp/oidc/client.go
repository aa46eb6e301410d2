package oidc

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/elevid/elevid/idp/release"
	"github.com/elevid/elevid/school"
)

// Settings is the OpenID Connect part of a platform's registration,
// kept as JSON in school.Platform.Settings. The client id is the
// platform's ClientID.
type Settings struct {
	// SecretHash is "sha256:" and the hex SHA-256 of the client secret (a
	// 32-byte random value, so a fast hash is enough); empty for a public
	// client.
	SecretHash string `json:"secret_hash,omitempty"`
	// Public marks a client that cannot keep a secret (a native or browser
	// app): PKCE with S256 is then required.
	Public bool `json:"public,omitempty"`
	// RedirectURIs must match the request's redirect_uri exactly.
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris,omitempty"`
	// BackchannelLogoutURI receives logout tokens when a pupil's session
	// ends, consent is withdrawn or the pupil is quarantined.
	BackchannelLogoutURI string `json:"backchannel_logout_uri,omitempty"`
	// SectorIdentifier overrides the pairwise sector (by default the host
	// of the redirect URIs, which must then all share one host).
	SectorIdentifier string `json:"sector_identifier,omitempty"`
	// Scopes lists the extra scopes (beyond openid, profile) the platform
	// may ask for: "eduperson", "school", "groups".
	Scopes []string `json:"scopes,omitempty"`
	// OfflineAccess allows refresh tokens (scope offline_access).
	OfflineAccess bool `json:"offline_access,omitempty"`
	// SigningAlg is "ES256" (default) or "RS256".
	SigningAlg string `json:"signing_alg,omitempty"`
	// Token lifetimes in seconds; defaults when zero.
	IDTokenSeconds      int64 `json:"id_token_seconds,omitempty"`
	AccessTokenSeconds  int64 `json:"access_token_seconds,omitempty"`
	RefreshTokenSeconds int64 `json:"refresh_token_seconds,omitempty"`
}

// Default token lifetimes.
const (
	DefaultIDTokenLifetime      = 15 * time.Minute
	DefaultAccessTokenLifetime  = 15 * time.Minute
	DefaultRefreshTokenLifetime = 12 * time.Hour
	oidcClockSkew               = 30 * time.Second
)

// ParseSettings decodes and validates a platform's OIDC settings.
func ParseSettings(b []byte) (Settings, error) {
	var s Settings
	d := json.NewDecoder(strings.NewReader(string(b)))
	d.DisallowUnknownFields()
	if err := d.Decode(&s); err != nil {
		return s, fmt.Errorf("%w: oidc settings: %v", school.ErrInvalid, err)
	}
	return s, s.Validate()
}

// Validate reports every problem with s, wrapped in ErrInvalid.
func (s Settings) Validate() error {
	var probs []string
	if len(s.RedirectURIs) == 0 {
		probs = append(probs, "at least one redirect URI is required")
	}
	for _, u := range append(slices.Clone(s.RedirectURIs), s.PostLogoutRedirectURIs...) {
		if err := validRedirectURI(u); err != nil {
			probs = append(probs, err.Error())
		}
	}
	if s.BackchannelLogoutURI != "" {
		if u, err := url.Parse(s.BackchannelLogoutURI); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
			probs = append(probs, fmt.Sprintf("back-channel logout URI %q is not an absolute http(s) URL", s.BackchannelLogoutURI))
		}
	}
	if s.Public == (s.SecretHash != "") {
		probs = append(probs, "a client is either public or has a secret")
	}
	if s.SecretHash != "" && !strings.HasPrefix(s.SecretHash, "sha256:") {
		probs = append(probs, "unknown secret hash format")
	}
	switch s.SigningAlg {
	case "", AlgES256, AlgRS256:
	default:
		probs = append(probs, fmt.Sprintf("signing algorithm %q (ES256 or RS256)", s.SigningAlg))
	}
	for _, sc := range s.Scopes {
		if _, ok := scopeClaims[sc]; !ok {
			probs = append(probs, fmt.Sprintf("unknown scope %q", sc))
		}
	}
	if _, err := s.Sector(); err != nil {
		probs = append(probs, err.Error())
	}
	if s.IDTokenSeconds < 0 || s.AccessTokenSeconds < 0 || s.RefreshTokenSeconds < 0 {
		probs = append(probs, "token lifetimes must not be negative")
	}
	if len(probs) > 0 {
		return fmt.Errorf("%w: %s", school.ErrInvalid, strings.Join(probs, "; "))
	}
	return nil
}

func validRedirectURI(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Fragment != "" {
		return fmt.Errorf("redirect URI %q is not an absolute URI without fragment", raw)
	}
	if (u.Scheme == "http" || u.Scheme == "https") && u.Host == "" {
		return fmt.Errorf("redirect URI %q has no host", raw)
	}
	return nil
}

// Sector returns the pairwise sector: SectorIdentifier, or the one host
// all redirect URIs share.
func (s Settings) Sector() (string, error) {
	if s.SectorIdentifier != "" {
		return s.SectorIdentifier, nil
	}
	host := ""
	for _, raw := range s.RedirectURIs {
		u, err := url.Parse(raw)
		if err != nil {
			return "", fmt.Errorf("redirect URI %q: %v", raw, err)
		}
		h := u.Hostname()
		if h == "" {
			h = u.Scheme // a private-use scheme of a native app
		}
		if host != "" && h != host {
			return "", fmt.Errorf("redirect URIs on several hosts (%s, %s) need a sector identifier", host, h)
		}
		host = h
	}
	return host, nil
}

func (s Settings) lifetime(v int64, def time.Duration) time.Duration {
	if v > 0 {
		return time.Duration(v) * time.Second
	}
	return def
}

// Alg returns the signing algorithm.
func (s Settings) Alg() string {
	if s.SigningAlg == "" {
		return AlgES256
	}
	return s.SigningAlg
}

// HashClientSecret returns the SecretHash of a client secret.
func HashClientSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

// NewClientSecret returns a new random client secret (32 bytes, base64url).
func NewClientSecret() string {
	return base64.RawURLEncoding.EncodeToString(school.NewSecret(32))
}

// checkSecret compares secret with the stored hash in constant time.
func (s Settings) checkSecret(secret string) bool {
	if s.SecretHash == "" || secret == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(HashClientSecret(secret)), []byte(s.SecretHash)) == 1
}

// oidcClient is a registered platform seen as a zitadel op.Client.
type oidcClient struct {
	pf       school.Platform
	s        Settings
	sector   string
	loginURL string // path of the login hand-off, "?id=" is appended
	// direct, when set, is where LoginURL sends the browser instead: the
	// passkey login, when the authorize request found no session and
	// may show a login (saves the hop through the hand-off).
	direct func(id string) string
}

func newOIDCClient(pf school.Platform, loginURL string) (*oidcClient, error) {
	if pf.Protocol != school.ProtocolOIDC {
		return nil, fmt.Errorf("platform %s is not an OIDC platform", pf.ClientID)
	}
	s, err := ParseSettings(pf.Settings)
	if err != nil {
		return nil, fmt.Errorf("platform %s: %w", pf.ClientID, err)
	}
	sector, _ := s.Sector()
	return &oidcClient{pf: pf, s: s, sector: sector, loginURL: loginURL}, nil
}

// subject returns the sub the platform knows the pupil by.
func (c *oidcClient) subject(secret []byte, pupilID string) string {
	if c.pf.SubjectType == school.SubjectPublic {
		return pupilID
	}
	return release.Pairwise(secret, pupilID, c.sector)
}

// allowsScope reports whether the platform may request scope.
func (c *oidcClient) allowsScope(scope string) bool {
	switch scope {
	case oidc.ScopeOpenID, oidc.ScopeProfile:
		return true
	case oidc.ScopeOfflineAccess:
		return c.s.OfflineAccess
	}
	return slices.Contains(c.s.Scopes, scope)
}

func (c *oidcClient) GetID() string                    { return c.pf.ClientID }
func (c *oidcClient) RedirectURIs() []string           { return c.s.RedirectURIs }
func (c *oidcClient) PostLogoutRedirectURIs() []string { return c.s.PostLogoutRedirectURIs }
func (c *oidcClient) ApplicationType() op.ApplicationType {
	if c.s.Public {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c *oidcClient) AuthMethod() oidc.AuthMethod {
	if c.s.Public {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}
func (c *oidcClient) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *oidcClient) GrantTypes() []oidc.GrantType {
	g := []oidc.GrantType{oidc.GrantTypeCode}
	if c.s.OfflineAccess {
		g = append(g, oidc.GrantTypeRefreshToken)
	}
	return g
}
func (c *oidcClient) LoginURL(id string) string {
	if c.direct != nil {
		return c.direct(id)
	}
	return c.loginURL + "?id=" + url.QueryEscape(id)
}
func (c *oidcClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *oidcClient) IDTokenLifetime() time.Duration {
	return c.s.lifetime(c.s.IDTokenSeconds, DefaultIDTokenLifetime)
}
func (c *oidcClient) DevMode() bool                        { return false }
func (c *oidcClient) IsScopeAllowed(scope string) bool     { return c.allowsScope(scope) }
func (c *oidcClient) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *oidcClient) ClockSkew() time.Duration             { return oidcClockSkew }
func (c *oidcClient) accessTokenLifetime() time.Duration {
	return c.s.lifetime(c.s.AccessTokenSeconds, DefaultAccessTokenLifetime)
}
func (c *oidcClient) refreshTokenLifetime() time.Duration {
	return c.s.lifetime(c.s.RefreshTokenSeconds, DefaultRefreshTokenLifetime)
}
func (c *oidcClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *oidcClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
