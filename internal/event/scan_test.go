package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/hookd/hookd/internal/payloads"
)

// reference is ParsePayload as encoding/json would do it: the oracle for the skimming parser.
func reference(body []byte) (Meta, error) {
	var env struct {
		Action       string `json:"action"`
		Installation *struct {
			ID      int64 `json:"id"`
			Account *struct {
				Login string `json:"login"`
			} `json:"account"`
		} `json:"installation"`
		Repository *struct {
			ID       int64  `json:"id"`
			FullName string `json:"full_name"`
			Owner    *struct {
				Login string `json:"login"`
			} `json:"owner"`
		} `json:"repository"`
		Sender *struct {
			Login string `json:"login"`
			Type  string `json:"type"`
		} `json:"sender"`
	}
	var m Meta
	if err := json.Unmarshal(body, &env); err != nil {
		return m, err
	}
	m.Action = env.Action
	if env.Installation != nil {
		m.InstallationID = env.Installation.ID
		if env.Installation.Account != nil {
			m.Owner = env.Installation.Account.Login
		}
	}
	if env.Repository != nil {
		m.RepositoryID, m.Repository = env.Repository.ID, env.Repository.FullName
		if env.Repository.Owner != nil && m.Owner == "" {
			m.Owner = env.Repository.Owner.Login
		}
	}
	if env.Sender != nil {
		m.Sender, m.SenderType = env.Sender.Login, env.Sender.Type
	}
	if m.InstallationID < 0 || m.RepositoryID < 0 {
		return m, errors.New("negative id")
	}
	return m, nil
}

var routingKeys = []string{"action", "installation", "repository", "sender", "id", "account", "login", "full_name", "owner", "type"}

// ambiguous reports inputs where encoding/json's case-insensitive or escaped key matching makes
// it read a field the skimming parser (exact keys, as GitHub sends them) does not.
func ambiguous(body []byte) bool {
	if strings.Contains(string(body), `\`) {
		return true
	}
	var v any
	if json.Unmarshal(body, &v) != nil {
		return false
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch x := v.(type) {
		case map[string]any:
			for k, c := range x {
				for _, r := range routingKeys {
					if k != r && strings.EqualFold(k, r) {
						return true
					}
				}
				if walk(c) {
					return true
				}
			}
		case []any:
			for _, c := range x {
				if walk(c) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

// FuzzParsePayloadMatchesEncodingJSON: the skimming parser reads what encoding/json reads.
func FuzzParsePayloadMatchesEncodingJSON(f *testing.F) {
	for _, n := range payloads.Names() {
		f.Add(payloads.Get(n))
	}
	f.Add([]byte(`{"installation":null,"repository":{"id":null},"sender":{"login":"a\"b"}}`))
	f.Add([]byte(` { "action" : "x" , "installation" : { "id" : 12 , "account" : { "login" : "o" } } } `))
	f.Fuzz(func(t *testing.T, body []byte) {
		var got Meta
		err := ParsePayload(&got, body)
		want, werr := reference(body)
		if werr != nil {
			if err == nil && !ambiguous(body) {
				t.Fatalf("accepted what encoding/json refuses (%v): %q → %+v", werr, body, got)
			}
			return
		}
		if ambiguous(body) {
			return
		}
		if err != nil {
			t.Fatalf("refused what encoding/json reads: %v: %q", err, body)
		}
		if got != want {
			t.Fatalf("%q:\n got %+v\nwant %+v", body, got, want)
		}
	})
}

// BenchmarkParsePayload compares the skimming parser with encoding/json on a real payload
// (skim, encoding-json) and on a comment payload whose body is one long string
// (long-string-skim, long-string-encoding-json), the shape most of ingest's bytes have.
func BenchmarkParsePayload(b *testing.B) {
	for _, c := range []struct {
		prefix string
		body   []byte
	}{
		{"", payloads.Get("pull_request.opened")},
		{"long-string-", longStringPayload()},
	} {
		b.Run(c.prefix+"skim", func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for range b.N {
				var m Meta
				if err := ParsePayload(&m, c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(c.prefix+"encoding-json", func(b *testing.B) {
			b.SetBytes(int64(len(c.body)))
			for range b.N {
				if _, err := reference(c.body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// longStringPayload is an issue_comment.created payload whose comment body is about 16 KB of
// markdown: escaped newlines and quotes, multi-byte UTF-8, URLs.
func longStringPayload() []byte {
	para := "Thanks for the report! I can reproduce this on `main` with Go 1.26 — see https://github.com/hookd/hookd/actions/runs/123456789/job/987654321 for the log.\\n\\n" +
		"The panic comes from `processor.(*partition).settle` when the \\\"ack\\\" races the redelivery; naïve fix below.\\n```go\\nif err != nil {\\n\\treturn fmt.Errorf(\\\"settle: %w\\\", err)\\n}\\n```\\n"
	body := strings.Repeat(para, 16384/len(para)+1)
	return []byte(`{"action":"created","issue":{"number":7,"title":"Crash on redelivery"},"comment":{"id":1,"body":"` + body +
		`"},"repository":{"id":42,"full_name":"acme/api","owner":{"login":"acme"}},"installation":{"id":7},"sender":{"login":"octocat","type":"User"}}`)
}

// FuzzValidMatchesEncodingJSON: the validator accepts exactly what json.Valid accepts.
func FuzzValidMatchesEncodingJSON(f *testing.F) {
	for _, n := range payloads.Names() {
		f.Add(payloads.Get(n))
	}
	for _, s := range []string{`{}`, `[]`, `"\u00e9"`, `-0.5e+10`, `01`, `1.`, `{"a":1,}`, `[1 2]`, "\"\x01\"", `"\x"`, `tru`, `{"a" 1}`, ` null `, `{"a":[{"b":"c"}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, _ := validObject(b, nil)
		if want := json.Valid(b); got != want {
			t.Fatalf("validObject(%q) = %v, json.Valid = %v", b, got, want)
		}
	})
}
