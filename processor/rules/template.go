package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"text/template"
	"unicode/utf8"
)

// TemplateData is what templates (http.url, http.headers, http.body, comment.body) see.
type TemplateData struct {
	Event       string         // webhook event name, e.g. "issues"
	Action      string         // payload action, e.g. "opened"; empty when the event has none
	Delivery    string         // delivery id
	Repository  string         // full name owner/name
	Sender      string         // sender login
	Rule        string         // the rule's name
	IssueNumber int            // issue or pull request number; 0 when the event has none
	Payload     map[string]any // the event JSON
	Run         RunOutput      // the run step's result; zero when the rule has none
	HTTP        HTTPOutput     // the http step's result; zero when the rule has none
}

// RunOutput is the result of a run step.
type RunOutput struct {
	Stdout    string `json:"stdout"`    // capped, token-redacted standard output
	Stderr    string `json:"stderr"`    // capped, token-redacted standard error
	ExitCode  int    `json:"exit_code"` // 0 on success
	Truncated bool   `json:"truncated"` // stdout or stderr was cut at its cap
}

// HTTPOutput is the result of an http step.
type HTTPOutput struct {
	Status    int    `json:"status"`    // HTTP status code
	Body      string `json:"body"`      // capped response body
	JSON      any    `json:"json"`      // the body decoded, when it is JSON (and was not cut); else nil
	Truncated bool   `json:"truncated"` // the body was cut at its cap
}

// templateFuncs are the helpers templates may call. They format data; none executes anything.
func templateFuncs() template.FuncMap {
	return template.FuncMap{
		"json":      tplJSON,
		"trunc":     tplTrunc,
		"default":   tplDefault,
		"lower":     func(v any) string { return strings.ToLower(toString(v)) },
		"upper":     func(v any) string { return strings.ToUpper(toString(v)) },
		"trim":      func(v any) string { return strings.TrimSpace(toString(v)) },
		"indent":    tplIndent,
		"codeblock": tplCodeblock,
	}
}

func toString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	case float64:
		// JSON numbers decode as float64; print integers without an exponent.
		if v == float64(int64(v)) {
			return fmt.Sprintf("%d", int64(v))
		}
	}
	return fmt.Sprint(v)
}

// tplJSON encodes v as JSON (no HTML escaping), for embedding values in JSON bodies.
func tplJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}

// tplTrunc cuts s to at most n characters: {{ .Payload.issue.body | trunc 500 }}.
func tplTrunc(n int, v any) string {
	s := toString(v)
	if n < 0 {
		n = 0
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos]
		}
		i++
	}
	return s
}

// tplDefault returns def when v is empty (nil, "", 0, false, empty list or map):
// {{ .Payload.issue.body | default "(no description)" }}.
func tplDefault(def, v any) any {
	if v == nil {
		return def
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Map, reflect.Slice, reflect.Array, reflect.String:
		if rv.Len() == 0 {
			return def
		}
	default:
		if rv.IsZero() {
			return def
		}
	}
	return v
}

// tplIndent prefixes every line of s with n spaces.
func tplIndent(n int, v any) string {
	pad := strings.Repeat(" ", max(n, 0))
	lines := strings.Split(toString(v), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n")
}

// tplCodeblock wraps the last argument in a fenced Markdown code block, with an optional
// language first: {{ .Run.Stdout | codeblock }}, {{ .Run.Stdout | codeblock "diff" }}. The fence
// is longer than any run of backticks in the text, so the text cannot break out of it.
func tplCodeblock(args ...any) (string, error) {
	if len(args) == 0 || len(args) > 2 {
		return "", fmt.Errorf("codeblock: want [language] text, got %d arguments", len(args))
	}
	text := toString(args[len(args)-1])
	lang := ""
	if len(args) == 2 {
		lang = toString(args[0])
	}
	longest, run := 0, 0
	for _, r := range text {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", max(3, longest+1))
	return fence + lang + "\n" + strings.TrimSuffix(text, "\n") + "\n" + fence, nil
}

// parseTemplate parses one templated field; name is "rules[<rule>].<field>".
func parseTemplate(name, text string) (*template.Template, error) {
	t, err := template.New(name).Funcs(templateFuncs()).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("%s: invalid template: %w", name, err)
	}
	return t, nil
}

func render(t *template.Template, data *TemplateData) (string, error) {
	if t == nil {
		return "", nil
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("%s: %w", t.Name(), err)
	}
	return b.String(), nil
}
