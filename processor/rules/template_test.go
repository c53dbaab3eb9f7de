package rules

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestTemplateJSONValues posts a comment built from a real payload and an HTTP response: JSON
// numbers print as JSON writes them (ids are over a million) and JSON nulls (an issue opened
// without a description) print as nothing, not as 4.44500041e+08 and "<no value>".
func TestTemplateJSONValues(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"id": 1234567, "score": 0.25, "note": null}`)
	}))
	t.Cleanup(srv.Close)
	r := load(t, `
rules:
  - name: report
    on: [issues.opened]
    http: {url: '`+srv.URL+`/check?issue={{ .Payload.issue.id }}'}
    comment:
      body: |-
        issue {{ .Payload.issue.id }} #{{ .Payload.issue.number }} by {{ .Payload.issue.user.id }}
        body=[{{ .Payload.issue.body }}] {{ if .Payload.issue.body }}described{{ else }}undescribed{{ end }} {{ .Payload.issue.body | default "(none)" }}
        json={{ json .Payload.issue.body }} {{ json .Payload.issue.id }} {{ gt .Payload.issue.id 1000.0 }}
        check {{ .HTTP.JSON.id }} {{ .HTTP.JSON.score }} [{{ .HTTP.JSON.note }}] {{ .HTTP.JSON.id | upper }} {{ range .HTTP.JSON.note }}x{{ else }}none{{ end }}
`, Options{BotLogin: "hookd[bot]"}).Rule("report")
	in := input(t, "issues.opened", func(p map[string]any) {
		setPath(p, "issue.id", 444500041.0)
		setPath(p, "issue.body", nil)
	})
	gh := newFakeGitHub()
	if _, err := r.Execute(context.Background(), in, Deps{GitHub: gh, Ledger: newLedger()}); err != nil {
		t.Fatal(err)
	}
	comments, _, _ := gh.snapshot()
	if len(comments) != 1 {
		t.Fatalf("comments %+v", comments)
	}
	got, _, _ := strings.Cut(comments[0].Body, "\n\n<!--")
	want := "issue 444500041 #1 by 21031067\n" +
		"body=[] undescribed (none)\n" +
		"json=null 444500041 true\n" +
		"check 1234567 0.25 [] 1234567 none"
	if got != want {
		t.Errorf("comment\n%s\nwant\n%s", got, want)
	}
	plan, err := load(t, `
rules:
  - name: report
    on: [issues.opened]
    http: {url: 'https://example.com/check?issue={{ .Payload.issue.id }}', body: '{{ .Payload.issue.id }} [{{ .Payload.issue.body }}]'}
`, Options{}).Plan(in)
	if err != nil {
		t.Fatal(err)
	}
	if d := plan[0].Steps[0].Detail; d != "444500041 []" {
		t.Errorf("planned body %q, want %q", d, "444500041 []")
	}
}

func TestJSONNumberString(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {1, "1"}, {-7, "-7"}, {1234567, "1234567"}, {444500041, "444500041"},
		{0.25, "0.25"}, {1e20, "100000000000000000000"}, {1e21, "1e+21"}, {1e-7, "1e-7"}, {-2.5e-8, "-2.5e-8"},
	} {
		if got := jsonNumber(tc.in).String(); got != tc.want {
			t.Errorf("jsonNumber(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
