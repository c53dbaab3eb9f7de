package ghapp

import (
	"context"
	"crypto/rsa"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	jwt "github.com/golang-jwt/jwt/v4"
)

// JWT timing, within GitHub's rules (exp at most 10 minutes after now): iat is backdated for
// clock drift, and a JWT is replaced jwtRenew before its exp.
const (
	jwtBackdate = 60 * time.Second
	jwtLifetime = 9 * time.Minute
	jwtRenew    = 2 * time.Minute
)

// reusedJWT is a ghinstallation.Signer that signs one JWT with the app's clock and returns it
// until shortly before it expires, instead of signing one per request. It ignores the claims
// ghinstallation passes (they use time.Now and a 2-minute life).
type reusedJWT struct {
	appID int64
	key   *rsa.PrivateKey
	now   func() time.Time

	mu     sync.Mutex
	jwt    string
	exp    time.Time
	offset time.Duration // GitHub's clock minus ours, learnt from a rejected JWT's Date header
}

// skewTolerance is the clock difference with GitHub below which a rejected JWT is not blamed on
// the clock (Date has a one-second resolution, and the answer takes time to arrive).
const skewTolerance = 10 * time.Second

// Sign implements ghinstallation.Signer.
func (s *reusedJWT) Sign(jwt.Claims) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now().Add(s.offset)
	if s.jwt != "" && now.Before(s.exp.Add(-jwtRenew)) && !now.Before(s.exp.Add(-jwtLifetime)) {
		return s.jwt, nil
	}
	iat := now.Add(-jwtBackdate).Truncate(time.Second)
	exp := now.Add(jwtLifetime).Truncate(time.Second)
	signed, err := jwt.NewWithClaims(jwt.SigningMethodRS256, &jwt.RegisteredClaims{
		Issuer:    strconv.FormatInt(s.appID, 10),
		IssuedAt:  jwt.NewNumericDate(iat),
		ExpiresAt: jwt.NewNumericDate(exp),
	}).SignedString(s.key)
	if err != nil {
		return "", fmt.Errorf("sign app JWT: %w", err)
	}
	s.jwt, s.exp = signed, exp
	return signed, nil
}

// githubNow is the app's clock corrected by what adjust learnt of GitHub's.
func (s *reusedJWT) githubNow() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now().Add(s.offset)
}

// adjust learns GitHub's clock from the Date header of a 401 answered to a JWT: when it differs
// from the offset in use by more than skewTolerance, the offset changes, the cached JWT is dropped
// and adjust reports true (sign again and retry).
func (s *reusedJWT) adjust(date string) bool {
	githubNow, err := http.ParseTime(date)
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	offset := githubNow.Sub(s.now())
	if d := offset - s.offset; d < skewTolerance && d > -skewTolerance {
		return false
	}
	s.offset, s.jwt = offset, ""
	return true
}

// skewRetry sends app (JWT) requests and, when GitHub rejects the JWT and its Date header shows
// that this machine's clock is off by more than skewTolerance (a JWT's iat must be in GitHub's
// past and its exp at most 10 minutes in GitHub's future), signs again on GitHub's time and
// retries once.
type skewRetry struct {
	signer *reusedJWT
	next   http.RoundTripper // signs with signer
}

func (t skewRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.GetBody == nil) ||
		!t.signer.adjust(resp.Header.Get("Date")) {
		return resp, err
	}
	return resend(t.next, req, req.Clone(req.Context()), resp)
}

// resend sends retry, a copy of req, in place of the answer resp, with req's body rewound; it
// returns resp as it is when the body cannot be rewound.
func resend(next http.RoundTripper, req, retry *http.Request, resp *http.Response) (*http.Response, error) {
	if req.GetBody != nil {
		body, err := req.GetBody()
		if err != nil {
			return resp, nil
		}
		retry.Body = body
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return next.RoundTrip(retry)
}

// tokenSource holds one installation's token: minted on first use, reused, replaced
// RefreshBefore ahead of its expiry or when GitHub rejects it.
type tokenSource struct {
	app  *App
	id   int64
	mint chan struct{} // held while a token is minted: one mint at a time; waiters give up with their context

	mu      sync.Mutex
	token   string
	expires time.Time
}

func newTokenSource(app *App, id int64) *tokenSource {
	return &tokenSource{app: app, id: id, mint: make(chan struct{}, 1)}
}

// Token returns a valid token, minting one when there is none or it is about to expire.
// fresh reports whether it was minted by this call. A call that waits for another's mint
// gives up when its ctx ends.
func (s *tokenSource) Token(ctx context.Context) (token string, fresh bool, err error) {
	if token, ok := s.cached(); ok {
		return token, false, nil
	}
	select {
	case s.mint <- struct{}{}:
	case <-ctx.Done():
		return "", false, fmt.Errorf("installation %d: waiting for its token: %w", s.id, ctx.Err())
	}
	defer func() { <-s.mint }()
	if token, ok := s.cached(); ok { // minted by the call this one waited for
		return token, false, nil
	}
	tok, _, err := s.app.app.Apps.CreateInstallationToken(ctx, s.id, nil)
	if err != nil {
		return "", false, fmt.Errorf("installation %d: mint token: %w", s.id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.token, s.expires = tok.GetToken(), tok.GetExpiresAt().Time
	return s.token, true, nil
}

// cached returns the current token while it is not within RefreshBefore of its expiry.
func (s *tokenSource) cached() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// expires is on GitHub's clock.
	return s.token, s.token != "" && s.app.signer.githubNow().Before(s.expires.Add(-s.app.opts.RefreshBefore))
}

// invalidate forgets token if it is still the current one.
func (s *tokenSource) invalidate(token string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token == token {
		s.token = ""
	}
}

// installationTransport authenticates requests with the installation's token. On a 401 with a
// cached token (revoked, or expired early by clock skew) it mints a new one and retries once,
// when the request body can be replayed.
type installationTransport struct {
	src  *tokenSource
	next http.RoundTripper
}

func (t *installationTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	token, fresh, err := t.src.Token(req.Context())
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.next.RoundTrip(authorized(req, token))
	if err != nil || resp.StatusCode != http.StatusUnauthorized || fresh || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	t.src.invalidate(token)
	token, _, terr := t.src.Token(req.Context())
	if terr != nil {
		return resp, nil // the 401 says more than the failed mint
	}
	return resend(t.next, req, authorized(req, token), resp)
}

// authorized is a copy of req carrying token (RoundTrippers must not modify their request).
func authorized(req *http.Request, token string) *http.Request {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "token "+token)
	if r.Header.Get("Accept") == "" {
		r.Header.Set("Accept", "application/vnd.github.v3+json")
	}
	return r
}
