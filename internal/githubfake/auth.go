package githubfake

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// TokenLifetime is how long an installation token is valid, like GitHub.
const TokenLifetime = time.Hour

// maxJWTLifetime is how far in the future GitHub accepts a JWT's exp.
const maxJWTLifetime = 10 * time.Minute

// App describes the fake's GitHub App: what an operator copies from the app's settings page.
type App struct {
	ID            int64
	Slug          string
	Name          string
	PrivateKeyPEM []byte // PKCS#1 "RSA PRIVATE KEY", as GitHub's downloaded .pem files
	WebhookSecret string
	BotLogin      string // "<slug>[bot]"
	BotID         int64
	Events        []string
	Permissions   map[string]string
}

// App returns the app's identity and credentials.
func (f *Fake) App() App {
	f.mu.Lock()
	defer f.mu.Unlock()
	return App{
		ID: f.opts.AppID, Slug: f.opts.Slug, Name: f.opts.Name,
		PrivateKeyPEM: pem.EncodeToMemory(&pem.Block{
			Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(f.opts.PrivateKey),
		}),
		WebhookSecret: f.hook.Secret, BotLogin: f.bot.Login, BotID: f.bot.ID,
		Events: slices.Clone(f.opts.Events), Permissions: maps.Clone(f.opts.Permissions),
	}
}

// token is an installation access token.
type token struct {
	Value        string
	Installation int64
	ExpiresAt    time.Time
	Repos        map[int64]bool    // nil: every repository of the installation
	Permissions  map[string]string // granted permissions
}

func (t *token) canSee(r *repo) bool { return t.Repos == nil || t.Repos[r.ID] }

func (f *Fake) getApp(c *call) reply {
	a := f.appJSON()
	return ok(struct {
		*appJSON
		InstallationsCount int `json:"installations_count"`
	}{a, len(f.installs)})
}

// verifyJWTLocked checks the request's app JWT like GitHub; it returns GitHub's message for the
// first problem, or "".
func (f *Fake) verifyJWTLocked(r *http.Request, now time.Time) string {
	const undecodable = "A JSON web token could not be decoded"
	authz := r.Header.Get("Authorization")
	raw, found := strings.CutPrefix(authz, "Bearer ")
	if !found {
		if authz == "" {
			return "You must authenticate with a JSON web token (JWT) to access this endpoint."
		}
		return undecodable
	}
	parts := strings.Split(strings.TrimSpace(raw), ".")
	if len(parts) != 3 {
		return undecodable
	}
	var hdr struct {
		Alg string `json:"alg"`
	}
	if !decodeSegment(parts[0], &hdr) || hdr.Alg != "RS256" {
		return undecodable
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return undecodable
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(&f.opts.PrivateKey.PublicKey, crypto.SHA256, sum[:], sig) != nil {
		return undecodable
	}
	var claims struct {
		Iss json.RawMessage `json:"iss"`
		Iat *json.Number    `json:"iat"`
		Exp *json.Number    `json:"exp"`
	}
	if !decodeSegment(parts[1], &claims) {
		return undecodable
	}
	iss := strings.Trim(string(claims.Iss), `"`)
	if id, err := strconv.ParseInt(iss, 10, 64); err != nil || id != f.opts.AppID {
		return "'Issuer' claim ('iss') must be an Integer"
	}
	iat, errIat := numericDate(claims.Iat)
	if errIat != nil || iat.After(now.Add(time.Minute)) {
		return "'Issued at' claim ('iat') must be an Integer representing a time in the past"
	}
	exp, errExp := numericDate(claims.Exp)
	if errExp != nil || !exp.After(now) {
		return "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
	}
	if exp.Sub(iat) > maxJWTLifetime+time.Minute || exp.After(now.Add(maxJWTLifetime+time.Minute)) {
		return "'Expiration time' claim ('exp') is too far in the future"
	}
	return ""
}

func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	return err == nil && json.Unmarshal(b, v) == nil
}

func numericDate(n *json.Number) (time.Time, error) {
	if n == nil {
		return time.Time{}, fmt.Errorf("missing")
	}
	v, err := n.Int64()
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(v, 0), nil
}

// authTokenLocked finds the installation token of the request. On failure status is non-zero
// and msg is GitHub's message.
func (f *Fake) authTokenLocked(r *http.Request, now time.Time) (tok *token, in *installation, status int, msg string) {
	authz := r.Header.Get("Authorization")
	if authz == "" {
		return nil, nil, http.StatusUnauthorized, msgNoAuth
	}
	raw, found := strings.CutPrefix(authz, "token ")
	if !found {
		raw, found = strings.CutPrefix(authz, "Bearer ")
	}
	if !found {
		return nil, nil, http.StatusUnauthorized, msgBadCreds
	}
	tok = f.tokens[strings.TrimSpace(raw)]
	if tok == nil || !now.Before(tok.ExpiresAt) {
		return nil, nil, http.StatusUnauthorized, msgBadCreds
	}
	in = f.installs[tok.Installation]
	if in == nil {
		return nil, nil, http.StatusUnauthorized, msgBadCreds
	}
	if !in.SuspendedAt.IsZero() {
		return tok, in, http.StatusForbidden, msgSuspended
	}
	return tok, in, 0, ""
}

// need checks that the call's token grants perm at level ("read" or "write").
func (c *call) need(perm, level string) *reply {
	got := c.tok.Permissions[perm]
	if got == "write" || (level == "read" && got == "read") {
		return nil
	}
	rep := fail(http.StatusForbidden, msgNoAccess)
	return &rep
}

func (f *Fake) createToken(c *call) reply {
	id, bad := pathInt(c, "id")
	if bad != nil {
		return *bad
	}
	in := f.installs[id]
	if in == nil {
		return fail(http.StatusNotFound, msgNotFound)
	}
	if !in.SuspendedAt.IsZero() {
		return fail(http.StatusForbidden, msgSuspended)
	}
	var req struct {
		Repositories  []string          `json:"repositories"`
		RepositoryIDs []int64           `json:"repository_ids"`
		Permissions   map[string]string `json:"permissions"`
	}
	if bad := decodeBody(c, &req); bad != nil {
		return *bad
	}
	tok := &token{
		Installation: in.ID,
		ExpiresAt:    c.now.Add(TokenLifetime),
		Permissions:  maps.Clone(f.opts.Permissions),
	}
	const notAccessible = "There is at least one repository that does not exist or is not accessible to the parent installation."
	if req.Repositories != nil || req.RepositoryIDs != nil {
		tok.Repos = map[int64]bool{}
		for _, name := range req.Repositories {
			r := in.repoNamed(name)
			if r == nil {
				return fail(http.StatusUnprocessableEntity, notAccessible)
			}
			tok.Repos[r.ID] = true
		}
		for _, rid := range req.RepositoryIDs {
			r := f.reposByID[rid]
			if r == nil || r.Installation != in.ID {
				return fail(http.StatusUnprocessableEntity, notAccessible)
			}
			tok.Repos[rid] = true
		}
	}
	if req.Permissions != nil {
		narrowed := map[string]string{}
		for p, lvl := range req.Permissions {
			granted := f.opts.Permissions[p]
			if granted == "" || (lvl == "write" && granted != "write") || (lvl != "read" && lvl != "write") {
				return fail(http.StatusUnprocessableEntity, "The permissions requested are not granted to this installation.")
			}
			narrowed[p] = lvl
		}
		tok.Permissions = narrowed
	}
	f.tokenSeq++
	tok.Value = fmt.Sprintf("ghs_fake%032d", f.tokenSeq)
	f.tokens[tok.Value] = tok
	f.statsLocked(in.ID).TokensMinted++

	out := struct {
		Token               string            `json:"token"`
		ExpiresAt           string            `json:"expires_at"`
		Permissions         map[string]string `json:"permissions"`
		RepositorySelection string            `json:"repository_selection"`
		Repositories        []*repoJSON       `json:"repositories,omitempty"`
	}{Token: tok.Value, ExpiresAt: ghTime(tok.ExpiresAt), Permissions: tok.Permissions, RepositorySelection: "selected"}
	if tok.Repos != nil {
		for _, r := range in.Repos {
			if tok.Repos[r.ID] {
				out.Repositories = append(out.Repositories, f.repoJSON(r))
			}
		}
	}
	return reply{status: http.StatusCreated, body: out}
}

// RevokeTokens invalidates every token of installation id, as if the owner rotated them.
func (f *Fake) RevokeTokens(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, t := range f.tokens {
		if t.Installation == id {
			delete(f.tokens, k)
		}
	}
}
