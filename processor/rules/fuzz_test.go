package rules

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseLoad feeds arbitrary documents through Parse and Load: errors are fine, panics are not.
func FuzzParseLoad(f *testing.F) {
	f.Add([]byte("rules:\n- name: a\n  on: [issues.opened]\n  if: 'has_label(\"x\") && command(\"y\")'\n  comment: {body: '{{ .Run.Stdout | codeblock }}'}\n"))
	f.Add([]byte("rules:\n- name: b\n  on: issues\n  if: 'title_matches(payload.issue.title)'\n  http: {url: 'http://x/{{ json .Payload }}', headers: {A: '{{ trunc 3 .Sender }}'}}\n"))
	f.Add([]byte("rules: [{name: c, on: [push], run: {command: [x], timeout: 1s, token: true, permissions: {contents: write}}}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data)
		if err != nil {
			return
		}
		e, err := Load(cfg, Options{BaseDir: "/"})
		if err != nil {
			return
		}
		in := Input{Event: "issues", Action: "opened", Payload: []byte(`{"issue":{"number":1,"title":"t","labels":[{"name":"x"}]},"comment":{"body":"/y"}}`)}
		_ = e.Match(in)
		_, _ = e.Plan(in)
	})
}

// FuzzCommentBody checks the final comment always fits GitHub's limit, stays valid UTF-8 and
// ends with its marker.
func FuzzCommentBody(f *testing.F) {
	f.Add("hello", 1)
	f.Add(strings.Repeat("😀", 33000), 1)
	f.Add(strings.Repeat("é", 70000), 2)
	f.Fuzz(func(t *testing.T, body string, repeat int) {
		if repeat < 1 || repeat > 100 {
			return
		}
		if !utf8.ValidString(body) {
			return
		}
		body = strings.Repeat(body, repeat)
		marker := AppendMarker("rule", "d-1")
		out := commentBody(body, marker)
		if utf16Len(out) > MaxCommentLength || !utf8.ValidString(out) || !strings.HasSuffix(out, marker) {
			t.Fatalf("len %d valid %v", utf16Len(out), utf8.ValidString(out))
		}
		if utf16Len(body)+len(marker)+2 <= MaxCommentLength && out != body+"\n\n"+marker {
			t.Fatal("a body that fits was changed")
		}
	})
}
