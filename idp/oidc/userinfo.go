package oidc

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// userinfo is the userinfo endpoint (GET or POST), answering errors as
// RFC 6750 §3 says: 401 with `WWW-Authenticate: Bearer error="invalid_token"`
// for a garbage, expired or revoked token (and for one whose consent was
// withdrawn), 401 without an error code when no token was sent, 400
// invalid_request for a token in the query string (RFC 6750 §2.3 is
// optional; ElevID refuses it, since URLs end up in logs and histories)
// or sent twice.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Query().Has("access_token") {
		bearerError(w, http.StatusBadRequest, "invalid_request", "access_token in the query string is not accepted; use the Authorization header")
		return
	}
	var tokens []string
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
			bearerError(w, http.StatusUnauthorized, "invalid_token", "malformed Authorization header")
			return
		}
		tokens = append(tokens, strings.TrimSpace(tok))
	}
	if r.Method == http.MethodPost {
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "application/x-www-form-urlencoded" {
			if err := r.ParseForm(); err != nil {
				bearerError(w, http.StatusBadRequest, "invalid_request", "cannot parse the form")
				return
			}
			tokens = append(tokens, r.PostForm["access_token"]...)
		}
	}
	switch len(tokens) {
	case 0:
		bearerError(w, http.StatusUnauthorized, "", "")
		return
	case 1:
	default:
		bearerError(w, http.StatusBadRequest, "invalid_request", "more than one access token")
		return
	}
	plain, err := p.crypto.Decrypt(tokens[0])
	tokenID, subject, ok := strings.Cut(plain, ":")
	if err != nil || !ok || strings.Contains(subject, ":") {
		bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is not valid")
		return
	}
	info := new(oidc.UserInfo)
	err = p.storage.SetUserinfoFromToken(r.Context(), info, tokenID, subject, r.Header.Get("Origin"))
	var oe *oidc.Error
	switch {
	case err == nil:
	case errors.As(err, &oe) && oe.ErrorType == oidc.ServerError:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte(`{"error":"server_error"}`))
		return
	default:
		bearerError(w, http.StatusUnauthorized, "invalid_token", "the access token is not valid")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(info)
}
