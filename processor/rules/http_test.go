package rules

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/hookd/hookd/planner"
)

func TestHTTP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	type seen struct {
		method, path, ctype, body string
	}
	server := func(t *testing.T, status int, hdr map[string]string, body string) (*httptest.Server, chan seen) {
		ch := make(chan seen, 1)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			ch <- seen{r.Method, r.URL.Path, r.Header.Get("Content-Type"), string(b)}
			for k, v := range hdr {
				w.Header().Set(k, v)
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
		}))
		t.Cleanup(srv.Close)
		return srv, ch
	}
	rule := func(t *testing.T, url string, opts Options) *Rule {
		return load(t, fmt.Sprintf(`
rules:
  - name: ask
    on: [issues]
    http:
      method: POST
      url: '%s/api/generate'
      headers: {Content-Type: application/json}
      body: '{"model":"m","prompt":{{ json .Payload.issue.title }},"stream":false}'
      timeout: 2s
`, url), opts).Rule("ask")
	}

	t.Run("2xx captures status, body and JSON", func(t *testing.T) {
		t.Parallel()
		srv, ch := server(t, 200, map[string]string{"Content-Type": "application/json"}, `{"response":"a <b> bug","done":true}`)
		res, err := rule(t, srv.URL, Options{}).Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if err != nil {
			t.Fatal(err)
		}
		got := <-ch
		if got.method != "POST" || got.path != "/api/generate" || got.ctype != "application/json" ||
			got.body != `{"model":"m","prompt":"Spelling error in the README file","stream":false}` {
			t.Errorf("request %+v", got)
		}
		h := res.HTTP
		if h.Status != 200 || h.JSON.(map[string]any)["response"] != "a <b> bug" || h.Body == "" {
			t.Errorf("result %+v", h)
		}
	})

	for name, tc := range map[string]struct {
		status int
		hdr    map[string]string
		class  planner.Class
		wait   time.Duration
	}{
		"5xx is transient":                {503, nil, planner.TransientClass, 0},
		"429 with Retry-After waits":      {429, map[string]string{"Retry-After": "7"}, planner.TransientClass, 7 * time.Second},
		"4xx is permanent":                {404, nil, planner.PermanentClass, 0},
		"422 is permanent":                {422, nil, planner.PermanentClass, 0},
		"500 with Retry-After is honored": {500, map[string]string{"Retry-After": "3"}, planner.TransientClass, 3 * time.Second},
		"408 is transient":                {408, nil, planner.TransientClass, 0},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv, _ := server(t, tc.status, tc.hdr, `{"error":"model not found"}`)
			res, err := rule(t, srv.URL, Options{}).Execute(ctx, input(t, "issues.opened", nil), Deps{})
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("status %d: {\"error\":\"model not found\"}", tc.status)) {
				t.Fatalf("err %v", err)
			}
			if c, w := planner.Classify(err, time.Now()); c != tc.class || w != tc.wait {
				t.Errorf("class %v wait %s", c, w)
			}
			if res.HTTP.Status != tc.status {
				t.Errorf("status %d", res.HTTP.Status)
			}
		})
	}

	t.Run("Retry-After as an HTTP-date is honored", func(t *testing.T) {
		t.Parallel()
		at := time.Now().Add(time.Minute).UTC().Format(http.TimeFormat)
		srv, _ := server(t, 503, map[string]string{"Retry-After": at}, `{"error":"busy"}`)
		_, err := rule(t, srv.URL, Options{}).Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if c, w := planner.Classify(err, time.Now()); c != planner.TransientClass || w < 55*time.Second || w > time.Minute {
			t.Errorf("class %v wait %s, want transient and about a minute", c, w)
		}
	})

	t.Run("body over the cap is truncated and not parsed", func(t *testing.T) {
		t.Parallel()
		srv, _ := server(t, 200, nil, `{"response":"`+strings.Repeat("x", 100)+`"}`)
		res, err := rule(t, srv.URL, Options{MaxHTTPBody: 50}).Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if err != nil {
			t.Fatal(err)
		}
		if len(res.HTTP.Body) != 50 || !res.HTTP.Truncated || res.HTTP.JSON != nil {
			t.Errorf("result %+v", res.HTTP)
		}
	})

	t.Run("timeout is transient", func(t *testing.T) {
		t.Parallel()
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) })
		r := load(t, "rules:\n- name: slow\n  on: [issues]\n  http: {url: '"+srv.URL+"', timeout: 200ms}\n", Options{}).Rule("slow")
		_, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if c, _ := planner.Classify(err, time.Now()); c != planner.TransientClass || !strings.Contains(err.Error(), "no response within 200ms") {
			t.Fatalf("err %v class %v", err, c)
		}
	})

	t.Run("unreachable is transient", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		_, err := rule(t, url, Options{}).Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if c, _ := planner.Classify(err, time.Now()); c != planner.TransientClass {
			t.Fatalf("err %v class %v", err, c)
		}
	})

	t.Run("a rendered header value with a line break is permanent", func(t *testing.T) {
		t.Parallel()
		srv, ch := server(t, 200, nil, "")
		r := load(t, "rules:\n- name: h\n  on: [issues]\n  http: {url: '"+srv.URL+"', headers: {X-Body: '{{ .Payload.issue.body }}'}}\n", Options{}).Rule("h")
		in := input(t, "issues.opened", func(p map[string]any) { setPath(p, "issue.body", "line one\r\nline two") })
		_, err := r.Execute(ctx, in, Deps{})
		if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass || !strings.Contains(err.Error(), "rules[h].http.headers.X-Body") {
			t.Fatalf("err %v class %v (a transient class retries it without end)", err, c)
		}
		select {
		case got := <-ch:
			t.Fatalf("request sent: %+v", got)
		default:
		}
	})

	t.Run("a redirect is not followed and is permanent", func(t *testing.T) {
		t.Parallel()
		other, otherSeen := server(t, 200, nil, "ok")
		srv, ch := server(t, http.StatusFound, map[string]string{"Location": other.URL + "/moved?token=secret"}, "")
		r := load(t, "rules:\n- name: r\n  on: [issues]\n  http: {url: '"+srv.URL+"', headers: {X-Api-Key: k}}\n", Options{}).Rule("r")
		res, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{HTTPClient: &http.Client{}})
		if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass || res.HTTP.Status != http.StatusFound ||
			!strings.Contains(err.Error(), "does not follow redirects") || !strings.Contains(err.Error(), other.URL+"/moved") || strings.Contains(err.Error(), "secret") {
			t.Fatalf("err %v class %v status %d", err, c, res.HTTP.Status)
		}
		<-ch
		select {
		case got := <-otherSeen:
			t.Fatalf("the redirect was followed: %+v", got)
		default:
		}
	})

	t.Run("a certificate that does not verify is permanent", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewTLSServer(http.NotFoundHandler()) // its certificate is signed by no CA the client trusts
		t.Cleanup(srv.Close)
		_, err := rule(t, srv.URL, Options{}).Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass || !strings.Contains(err.Error(), "TLS certificate does not verify") {
			t.Fatalf("err %v class %v", err, c)
		}
	})

	t.Run("a template on .HTTP.JSON says why the response was not decoded", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, body string
			max        int
			want       string
		}{
			// Ollama without "stream": false answers with one JSON object per line.
			{"streamed", "{\"response\":\"a\"}\n{\"response\":\"b\",\"done\":true}\n", 0, "response (status 200, 46 bytes) is not one JSON value"},
			{"over the cap", `{"response":"` + strings.Repeat("a", 100) + `"}`, 64, "cut at the 64-byte cap"},
		} {
			srv, ch := server(t, 200, map[string]string{"Content-Type": "application/x-ndjson"}, tc.body)
			r := load(t, "rules:\n- name: explain\n  on: [issues]\n  http: {url: '"+srv.URL+"', body: '{}'}\n  comment: {body: '{{ .HTTP.JSON.response }}'}\n",
				Options{MaxHTTPBody: tc.max}).Rule("explain")
			_, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{GitHub: newFakeGitHub()})
			<-ch
			if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass || !strings.Contains(err.Error(), tc.want) ||
				!strings.Contains(err.Error(), ".HTTP.JSON is empty") {
				t.Errorf("%s: err %v class %v, want it to say %q", tc.name, err, c, tc.want)
			}
		}
	})

	t.Run("a secret in a webhook URL's path stays out of errors and dry runs", func(t *testing.T) {
		t.Parallel()
		// Slack and Discord incoming webhooks carry their secret in the path.
		const secret = "Xq7RkT2mNc9LpW4sVb8ZhJ3d"
		srv, ch := server(t, http.StatusNotFound, nil, "no_service")
		yml := "rules:\n- name: notify\n  on: [issues]\n  dry_run: %v\n  http: {url: '" + srv.URL + "/services/T0001/B0001/" + secret + "?x=1', body: '{}'}\n" +
			"  comment: {body: 'sent: {{ .HTTP.Body }}'}\n"
		_, err := load(t, fmt.Sprintf(yml, false), Options{}).Rule("notify").Execute(ctx, input(t, "issues.opened", nil), Deps{})
		<-ch
		if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass || strings.Contains(err.Error(), secret) ||
			!strings.Contains(err.Error(), "POST "+srv.URL+"/services/T0001/B0001/…: status 404: no_service") {
			t.Fatalf("err %v class %v", err, c)
		}
		var logs bytes.Buffer
		res, err := load(t, fmt.Sprintf(yml, true), Options{}).Rule("notify").Execute(ctx, input(t, "issues.opened", nil), Deps{Log: zerolog.New(&logs)})
		if err != nil || !res.DryRun {
			t.Fatalf("dry run: %v %+v", err, res)
		}
		if strings.Contains(logs.String(), secret) || !strings.Contains(logs.String(), "/services/T0001/B0001/…") {
			t.Fatalf("dry-run log:\n%s", logs.String())
		}
	})

	t.Run("a rendered URL that does not parse says why", func(t *testing.T) {
		t.Parallel()
		r := load(t, "rules:\n- name: u\n  on: [issues]\n  http: {url: 'http://example.com/a{{ \"\\n\" }}b?key=secret'}\n", Options{}).Rule("u")
		_, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass ||
			!strings.Contains(err.Error(), "does not parse: net/url: invalid control character in URL") || strings.Contains(err.Error(), "secret") {
			t.Fatalf("err %v class %v", err, c)
		}
	})

	t.Run("rendered URL must be http", func(t *testing.T) {
		t.Parallel()
		r := load(t, "rules:\n- name: u\n  on: [issues]\n  http: {url: '{{ .Payload.issue.title }}'}\n", Options{}).Rule("u")
		_, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass {
			t.Fatalf("err %v class %v", err, c)
		}
	})
}
