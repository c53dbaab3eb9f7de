package githubfake

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

const (
	docsREST       = "https://docs.github.com/rest"
	docsPrimary    = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-primary-rate-limits"
	docsSecondary  = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits"
	msgBadCreds    = "Bad credentials"
	msgNoAuth      = "Requires authentication"
	msgNotFound    = "Not Found"
	msgNoAccess    = "Resource not accessible by integration"
	msgSuspended   = "This installation has been suspended"
	msgSecondary   = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
	mediaTypeValue = "github.v3; format=json"
)

// routes is the API: every endpoint the fake serves, read top to bottom.
func (f *Fake) routes() *http.ServeMux {
	m := http.NewServeMux()
	app, inst := f.appAPI, f.installationAPI

	m.HandleFunc("GET /app", app(f.getApp))
	m.HandleFunc("GET /app/installations", app(f.listInstallations))
	m.HandleFunc("GET /app/installations/{id}", app(f.getInstallation))
	m.HandleFunc("POST /app/installations/{id}/access_tokens", app(f.createToken))
	m.HandleFunc("GET /app/hook/config", app(f.getHookConfig))
	m.HandleFunc("PATCH /app/hook/config", app(f.patchHookConfig))
	m.HandleFunc("GET /app/hook/deliveries", app(f.listDeliveries))
	m.HandleFunc("GET /app/hook/deliveries/{id}", app(f.getDelivery))
	m.HandleFunc("POST /app/hook/deliveries/{id}/attempts", app(f.redeliver))

	m.HandleFunc("GET /rate_limit", inst(f.getRateLimit))
	m.HandleFunc("GET /installation/repositories", inst(f.listInstallationRepos))
	m.HandleFunc("GET /repos/{owner}/{repo}", inst(f.getRepo))
	m.HandleFunc("GET /repos/{owner}/{repo}/issues", inst(f.listIssues))
	m.HandleFunc("POST /repos/{owner}/{repo}/issues", inst(f.createIssue))
	m.HandleFunc("GET /repos/{owner}/{repo}/issues/{number}", inst(f.getIssue))
	m.HandleFunc("PATCH /repos/{owner}/{repo}/issues/{number}", inst(f.editIssue))
	// ServeMux patterns cannot tell issues/{number}/comments from issues/comments/{id}:
	// issueSub dispatches these.
	sub := map[string]http.HandlerFunc{
		"GET {number}/comments":  inst(f.listComments),
		"POST {number}/comments": inst(f.createComment),
		"GET comments/{id}":      inst(f.getComment),
		"PATCH comments/{id}":    inst(f.editComment),
		"DELETE comments/{id}":   inst(f.deleteComment),
		"GET {number}/labels":    inst(f.listIssueLabels),
		"POST {number}/labels":   inst(f.addLabels),
		"PUT {number}/labels":    inst(f.replaceLabels),
	}
	m.HandleFunc("/repos/{owner}/{repo}/issues/{x}/{y}", func(w http.ResponseWriter, r *http.Request) {
		x, y := r.PathValue("x"), r.PathValue("y")
		key := r.Method + " {number}/" + y
		if x == "comments" {
			key = r.Method + " comments/{id}"
			r.SetPathValue("id", y)
		} else {
			r.SetPathValue("number", x)
		}
		h := sub[key]
		if h == nil {
			writeJSON(w, http.StatusNotFound, errBody(msgNotFound))
			return
		}
		h(w, r)
	})
	m.HandleFunc("DELETE /repos/{owner}/{repo}/issues/{number}/labels/{name}", inst(f.removeLabel))
	m.HandleFunc("GET /repos/{owner}/{repo}/pulls/{number}", inst(f.getPull))
	m.HandleFunc("GET /repos/{owner}/{repo}/pulls/{number}/files", inst(f.listPullFiles))

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, errBody(msgNotFound))
	})
	return m
}

// call is one authenticated API request being served, under f.mu.
type call struct {
	r    *http.Request
	now  time.Time
	inst *installation // set for installation-token calls
	tok  *token        // set for installation-token calls
}

// reply is what an endpoint answers.
type reply struct {
	status int
	body   any // JSON-encoded; nil: no body
	header http.Header
	hooks  []outgoing // webhooks to send once the state lock is released
}

type errorJSON struct {
	Message          string            `json:"message"`
	Errors           []validationError `json:"errors,omitempty"`
	DocumentationURL string            `json:"documentation_url"`
}

type validationError struct {
	Resource string `json:"resource"`
	Field    string `json:"field"`
	Code     string `json:"code"`
}

func errBody(msg string) errorJSON { return errorJSON{Message: msg, DocumentationURL: docsREST} }

func fail(status int, msg string) reply { return reply{status: status, body: errBody(msg)} }

func invalid(resource, field, code string) reply {
	return reply{status: http.StatusUnprocessableEntity, body: errorJSON{
		Message: "Validation Failed", DocumentationURL: docsREST,
		Errors: []validationError{{Resource: resource, Field: field, Code: code}},
	}}
}

func ok(body any) reply { return reply{status: http.StatusOK, body: body} }

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// appAPI serves an endpoint authenticated with the app's JWT.
func (f *Fake) appAPI(h func(*call) reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.serve(w, r, true, h)
	}
}

// installationAPI serves an endpoint authenticated with an installation token.
func (f *Fake) installationAPI(h func(*call) reply) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f.serve(w, r, false, h)
	}
}

func (f *Fake) serve(w http.ResponseWriter, r *http.Request, jwt bool, h func(*call) reply) {
	f.mu.Lock()
	f.requestSeq++
	w.Header().Set("X-GitHub-Request-Id", fmt.Sprintf("FAKE:%08X", f.requestSeq))
	w.Header().Set("X-GitHub-Media-Type", mediaTypeValue)
	c := &call{r: r, now: f.nowLocked()}
	var key int64 // rate-limit bucket and stats: 0 for the app, else the installation id
	if jwt {
		if msg := f.verifyJWTLocked(r, c.now); msg != "" {
			f.unauthenticatedLocked(w, c.now)
			f.mu.Unlock()
			writeJSON(w, http.StatusUnauthorized, errBody(msg))
			return
		}
	} else {
		tok, in, status, msg := f.authTokenLocked(r, c.now)
		if status != 0 {
			if status == http.StatusUnauthorized {
				f.unauthenticatedLocked(w, c.now)
			} else {
				f.bucketLocked(in0(tok), c.now).setHeaders(w.Header(), c.now)
			}
			f.mu.Unlock()
			writeJSON(w, status, errBody(msg))
			return
		}
		c.tok, c.inst, key = tok, in, in.ID
	}
	b := f.bucketLocked(key, c.now)
	st := f.statsLocked(key)
	if r.URL.Path == "/rate_limit" {
		rep := h(c) // GET /rate_limit is free, like GitHub.
		b.setHeaders(w.Header(), c.now)
		f.mu.Unlock()
		writeJSON(w, rep.status, rep.body)
		return
	}
	if b.remaining <= 0 {
		st.RateLimited++
		b.setHeaders(w.Header(), c.now)
		f.mu.Unlock()
		who := "the app"
		if key != 0 {
			who = fmt.Sprintf("installation ID %d", key)
		}
		writeJSON(w, f.opts.RateLimitStatus, errorJSON{
			Message:          fmt.Sprintf("API rate limit exceeded for %s.", who),
			DocumentationURL: docsPrimary,
		})
		return
	}
	if ft := f.matchFaultLocked(r); ft != nil {
		st.Faults++
		b.setHeaders(w.Header(), c.now)
		f.mu.Unlock()
		ft.write(w)
		return
	}

	rep := h(c)
	var body []byte
	if rep.body != nil {
		body, _ = json.Marshal(rep.body)
		body = append(body, '\n')
	}
	notModified := false
	if r.Method == http.MethodGet && rep.status == http.StatusOK {
		sum := sha256.Sum256(body)
		etag := `W/"` + hex.EncodeToString(sum[:16]) + `"`
		w.Header().Set("ETag", etag)
		w.Header().Set("Cache-Control", "private, max-age=60, s-maxage=60")
		w.Header().Set("Vary", "Accept, Authorization, Cookie, X-GitHub-OTP")
		notModified = etagMatches(r.Header.Get("If-None-Match"), etag)
	}
	if notModified {
		st.NotModified++
	} else {
		st.Requests++
		b.remaining--
		b.used++
	}
	b.setHeaders(w.Header(), c.now)
	f.mu.Unlock()

	f.send(rep.hooks)

	for k, vs := range rep.header {
		w.Header()[k] = vs
	}
	if notModified {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if body == nil {
		w.WriteHeader(rep.status)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(rep.status)
	_, _ = w.Write(body)
}

// unauthenticatedLocked sets the rate-limit headers of a request GitHub could not
// authenticate: it counts against the caller's unauthenticated budget of 60 an hour (not
// enforced by the fake).
func (f *Fake) unauthenticatedLocked(w http.ResponseWriter, now time.Time) {
	b := f.buckets[unauthenticated]
	if b == nil || !now.Before(b.reset) {
		b = &bucket{limit: 60, remaining: 60, reset: now.Add(time.Hour)}
		f.buckets[unauthenticated] = b
	}
	if b.remaining > 0 {
		b.remaining--
		b.used++
	}
	b.setHeaders(w.Header(), now)
}

// unauthenticated is the bucket key of requests without valid credentials.
const unauthenticated = -1

func in0(t *token) int64 {
	if t == nil {
		return 0
	}
	return t.Installation
}

func etagMatches(ifNoneMatch, etag string) bool {
	if ifNoneMatch == "" {
		return false
	}
	weak := func(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), "W/") }
	for _, cand := range strings.Split(ifNoneMatch, ",") {
		if strings.TrimSpace(cand) == "*" || weak(cand) == weak(etag) {
			return true
		}
	}
	return false
}

// pathInt parses the path value name as an integer, or returns a 404 reply.
func pathInt(c *call, name string) (int64, *reply) {
	n, err := strconv.ParseInt(c.r.PathValue(name), 10, 64)
	if err != nil || n <= 0 {
		rep := fail(http.StatusNotFound, msgNotFound)
		return 0, &rep
	}
	return n, nil
}

// decodeBody decodes a JSON request body into v, or returns GitHub's 400 reply.
func decodeBody(c *call, v any) *reply {
	if c.r.Body == nil || c.r.ContentLength == 0 {
		return nil
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(c.r.Body); err != nil || buf.Len() == 0 {
		return nil
	}
	if err := json.Unmarshal(buf.Bytes(), v); err != nil {
		rep := fail(http.StatusBadRequest, "Problems parsing JSON")
		return &rep
	}
	return nil
}

// paginate applies page/per_page to a list of n items: it returns the slice bounds and sets
// GitHub's Link header (first, prev, next, last) on rep.
func (f *Fake) paginate(c *call, n int, rep *reply) (lo, hi int) {
	q := c.r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	if per > 100 {
		per = 100
	}
	page, _ := strconv.Atoi(q.Get("page"))
	if page <= 0 {
		page = 1
	}
	last := (n + per - 1) / per
	if last == 0 {
		last = 1
	}
	lo = min((page-1)*per, n)
	hi = min(lo+per, n)
	link := func(p int, rel string) string {
		q.Set("page", strconv.Itoa(p))
		q.Set("per_page", strconv.Itoa(per))
		u := f.baseURL + strings.TrimPrefix(c.r.URL.Path, "/") + "?" + q.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u, rel)
	}
	var links []string
	if page > 1 {
		links = append(links, link(page-1, "prev"))
	}
	if page < last {
		links = append(links, link(page+1, "next"), link(last, "last"))
	}
	if page > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		if rep.header == nil {
			rep.header = http.Header{}
		}
		rep.header.Set("Link", strings.Join(links, ", "))
	}
	return lo, hi
}

// cursorLink formats a Link header entry with a cursor, like GitHub's delivery list.
func (f *Fake) cursorLink(c *call, cursor, rel string) string {
	q := url.Values{}
	if per := c.r.URL.Query().Get("per_page"); per != "" {
		q.Set("per_page", per)
	}
	q.Set("cursor", cursor)
	return fmt.Sprintf("<%s%s?%s>; rel=%q", f.baseURL, strings.TrimPrefix(c.r.URL.Path, "/"), q.Encode(), rel)
}
