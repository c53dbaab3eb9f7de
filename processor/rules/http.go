package rules

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/hookd/hookd/planner"
)

var errHTTPTimeout = errors.New("http step timed out")

// httpRequest sends the rule's request. 2xx is success; 5xx, 429 and 408 are transient (honouring
// Retry-After), other statuses permanent, redirects (not followed) included; network errors and
// timeouts transient, a certificate that does not verify permanent.
func (r *Rule) httpRequest(ctx context.Context, data *TemplateData, deps Deps) (HTTPOutput, error) {
	h := r.cfg.HTTP
	req, where, err := r.buildRequest(data)
	if err != nil {
		return HTTPOutput{}, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, h.Timeout, errHTTPTimeout)
	defer cancel()
	req = req.WithContext(ctx)
	var client http.Client
	if deps.HTTPClient != nil {
		client = *deps.HTTPClient
	}
	// Redirects are not followed: they would carry the rule's headers (credentials among them) to
	// another address, and turn a POST into a GET whose answer would count as the step's.
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(context.Cause(ctx), errHTTPTimeout) {
			return HTTPOutput{}, planner.Transient(fmt.Errorf("%s: no response within %s (raise http.timeout if it needs longer)", where, h.Timeout))
		}
		if ctx.Err() != nil {
			return HTTPOutput{}, fmt.Errorf("%s: %w", where, ctx.Err())
		}
		var cert *tls.CertificateVerificationError
		if errors.As(err, &cert) {
			// Retrying cannot help until someone fixes the certificate: dead-letter the event
			// (replay it once fixed) rather than hold its repository's queue.
			return HTTPOutput{}, planner.Permanent(fmt.Errorf("%s: the endpoint's TLS certificate does not verify: %w", where, scrubURLError(err)))
		}
		return HTTPOutput{}, planner.Transient(fmt.Errorf("%s: %w", where, scrubURLError(err)))
	}
	defer resp.Body.Close()
	limit := r.opts.MaxHTTPBody
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return HTTPOutput{}, planner.Transient(fmt.Errorf("%s: read the response: %w", where, err))
	}
	out := HTTPOutput{Status: resp.StatusCode}
	if len(b) > limit {
		b, out.Truncated = b[:limit], true
	}
	out.Body = string(b)
	if !out.Truncated && json.Valid(b) {
		_ = json.Unmarshal(b, &out.JSON)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return out, nil
	}
	err = fmt.Errorf("%s: status %d: %s", where, resp.StatusCode, bodySnippet(out.Body))
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc, _ := resp.Location()
		err = fmt.Errorf("%s: status %d, redirected to %q: hookd does not follow redirects; set http.url to the address it redirects to", where, resp.StatusCode, safeURL(loc))
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusRequestTimeout || resp.StatusCode >= 500:
		// Transient as planner.Classify has them; Retry-After in seconds or as an HTTP-date.
		if d := planner.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now()); d > 0 {
			return out, planner.RetryAfter(err, d)
		}
		return out, planner.Transient(err)
	default:
		return out, planner.Permanent(err)
	}
}

// buildRequest renders the request; where names it for messages (safeURL: no credentials).
func (r *Rule) buildRequest(data *TemplateData) (*http.Request, string, error) {
	h := r.cfg.HTTP
	raw, err := render(r.httpURL, data)
	if err != nil {
		return nil, "", planner.Permanent(err)
	}
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil {
		return nil, "", planner.Permanent(fmt.Errorf("rules[%s].http.url: the rendered URL does not parse: %v (a value from the event may hold a line break or control character: escape it with urlquery)", r.cfg.Name, scrubURLError(err)))
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", planner.Permanent(fmt.Errorf("rules[%s].http.url: rendered %q is not an http(s) URL (want http:// or https:// and a host)", r.cfg.Name, safeURL(u)))
	}
	where := h.Method + " " + safeURL(u)
	body, err := render(r.httpBody, data)
	if err != nil {
		return nil, "", planner.Permanent(err)
	}
	req, err := http.NewRequest(h.Method, u.String(), strings.NewReader(body))
	if err != nil {
		return nil, "", planner.Permanent(fmt.Errorf("rules[%s].http: %w", r.cfg.Name, err))
	}
	for k, t := range r.httpHeaders {
		v, err := render(t, data)
		if err != nil {
			return nil, "", planner.Permanent(err)
		}
		// The client refuses such a value with an error that reads as transient: it would be
		// retried without end, holding the tenant.
		if strings.ContainsFunc(v, func(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }) {
			return nil, "", planner.Permanent(fmt.Errorf("rules[%s].http.headers.%s: the rendered value holds a line break or control character, which a header cannot carry (trim it or send it in the body)", r.cfg.Name, k))
		}
		req.Header.Set(k, v)
	}
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "hookd")
	}
	return req, where, nil
}

// secretSegment is the length from which a URL path segment is left out of messages.
const secretSegment = 16

// safeURL is u for messages (logs, errors, dead-letter headers): without user info, query and
// fragment, and with every path segment of secretSegment or more characters replaced by "…",
// since webhook URLs carry their secret in the path (Slack's /services/T…/B…/<secret>,
// Discord's /api/webhooks/<id>/<token>).
func safeURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	segs := strings.Split(u.Path, "/")
	for i, s := range segs {
		if utf8.RuneCountInString(s) >= secretSegment {
			segs[i] = "…"
		}
	}
	var b strings.Builder
	if u.Scheme != "" {
		b.WriteString(u.Scheme + ":")
	}
	if u.Host != "" {
		b.WriteString("//" + u.Host)
	}
	b.WriteString(strings.Join(segs, "/"))
	return b.String()
}

// scrubURLError drops the URL (which may carry a query secret) from a client error.
func scrubURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func bodySnippet(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 512 {
		s = tplTrunc(512, s) + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}
