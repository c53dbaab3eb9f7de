package rules

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/hookd/hookd/planner"
)

// TokenMinValidity is how long a token served on HOOKD_TOKEN_URL stays valid at least; an
// older cached token is replaced by a freshly minted one.
const TokenMinValidity = 10 * time.Minute

// tokenServer serves fresh installation tokens to one command on a loopback port under a random
// secret path, for as long as the command runs.
type tokenServer struct {
	src   TokenSource
	inst  int64
	repos []int64
	perms map[string]string
	log   zerolog.Logger
	now   func() time.Time

	mu     sync.Mutex
	tok    string
	exp    time.Time
	minted []string

	srv *http.Server
	// URL is where the command GETs a token.
	URL string
}

func (r *Rule) startTokens(ctx context.Context, in *Input, deps Deps, log zerolog.Logger) (*tokenServer, error) {
	if deps.Tokens == nil {
		return nil, planner.Permanent(fmt.Errorf("run.token: no token source configured; this is a wiring bug in hookd"))
	}
	if in.InstallationID == 0 || in.RepositoryID == 0 {
		return nil, planner.Permanent(fmt.Errorf("run.token: the event names no installation and repository, so there is no repository to scope a token to; remove token: true or restrict the rule to repository events"))
	}
	return startTokenServer(ctx, deps.Tokens, in.InstallationID, []int64{in.RepositoryID}, r.cfg.Run.Permissions, log)
}

func startTokenServer(ctx context.Context, src TokenSource, inst int64, repos []int64, perms map[string]string, log zerolog.Logger) (*tokenServer, error) {
	var secret [16]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("run.token: listen on loopback for the token endpoint: %w", err)
	}
	ts := &tokenServer{src: src, inst: inst, repos: slices.Clone(repos), perms: perms, log: log, now: time.Now}
	path := "/" + hex.EncodeToString(secret[:])
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+path, ts.serve)
	ts.srv = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ts.URL = "http://" + ln.Addr().String() + path
	go func() { _ = ts.srv.Serve(ln) }()
	return ts, nil
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	tok, err := ts.Get(r.Context())
	if err != nil {
		ts.log.Warn().Err(err).Msg("token endpoint: minting a token failed")
		http.Error(w, "hookd: could not mint a token; see hookd's log", http.StatusBadGateway)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(tok))
}

// Get returns a token valid for at least TokenMinValidity, minting one when needed.
func (ts *tokenServer) Get(ctx context.Context) (string, error) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.tok != "" && ts.exp.Sub(ts.now()) > TokenMinValidity {
		return ts.tok, nil
	}
	tok, exp, err := ts.src.Token(ctx, ts.inst, ts.repos, ts.perms)
	if err != nil {
		return "", err
	}
	ts.tok, ts.exp = tok, exp
	ts.minted = append(ts.minted, tok)
	return tok, nil
}

// Minted lists every token handed out, for redaction.
func (ts *tokenServer) Minted() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.minted)
}

// Close stops the endpoint; the URL stops answering.
func (ts *tokenServer) Close() { _ = ts.srv.Close() }
