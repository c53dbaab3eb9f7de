package rules

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"text/template"
	"unicode/utf8"
)

// TemplateData is what templates (http.url, http.headers, http.body, comment.body) see.
//
// JSON values (Payload, HTTP.JSON) print as they read in the JSON: a number as JSON writes it
// ({{ .Payload.issue.id }} is 444500041, not 4.44500041e+08), null as nothing (an issue opened
// without a description has "body": null; {{ .Payload.issue.body }} prints "", and null is
// false in {{ if }} and empty for default). A key the JSON does not have prints "<no value>"
// (Go templates); guard with {{ if .Payload.x }} or {{ default "" .Payload.x }}.
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
	d := *data
	if d.HTTP.JSON != nil { // nil: the response was not JSON
		d.HTTP.JSON = templateValue(d.HTTP.JSON)
	}
	var b strings.Builder
	if err := t.Execute(&b, &d); err != nil {
		return "", fmt.Errorf("%s: %w%s", t.Name(), err, jsonHint(data, err))
	}
	return b.String(), nil
}

// jsonNumber is a JSON number in template data. Its kind is still float64 (comparisons such as
// {{ if gt .Payload.issue.comments 0.0 }} work as on the decoded JSON); it prints as JSON writes
// it, where text/template would print a float64 with an exponent from a million up.
type jsonNumber float64

// String formats n as encoding/json does.
func (n jsonNumber) String() string {
	f := float64(n)
	if a := math.Abs(f); a != 0 && (a < 1e-6 || a >= 1e21) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		if n := len(s); n >= 4 && s[n-4] == 'e' && s[n-3] == '-' && s[n-2] == '0' {
			s = s[:n-2] + s[n-1:] // e-07 → e-7
		}
		return s
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// jsonNull is a JSON null in template data, as a nil jsonNull: it prints as nothing, is false
// in {{ if }} and {{ with }}, ranges over nothing, is empty for default and null again for the
// json helper, where a bare nil would print "<no value>". (A slice: a nil pointer would make
// {{ range }} fail.)
type jsonNull []any

// String is empty: null prints as nothing.
func (jsonNull) String() string { return "" }

// templateValue returns a copy of decoded JSON v with numbers as jsonNumber and nulls as
// jsonNull(nil), for templates. The decoded payload itself is shared with the CEL conditions
// and left as it is.
func templateValue(v any) any {
	switch v := v.(type) {
	case nil:
		return jsonNull(nil)
	case float64:
		return jsonNumber(v)
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, e := range v {
			out[k] = templateValue(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = templateValue(e)
		}
		return out
	}
	return v
}

// jsonHint explains a template error on .HTTP.JSON when the http step's response was not
// decoded: the template error alone ("nil pointer evaluating interface {}.response") does not
// say why.
func jsonHint(data *TemplateData, err error) string {
	h := data.HTTP
	if h.Status == 0 || h.JSON != nil || !strings.Contains(err.Error(), ".HTTP.JSON") {
		return ""
	}
	if h.Truncated {
		return fmt.Sprintf(" (the http step's response was cut at the %d-byte cap, so it was not decoded and .HTTP.JSON is empty; ask the endpoint for less, or use .HTTP.Body)", len(h.Body))
	}
	return fmt.Sprintf(" (the http step's response (status %d, %d bytes) is not one JSON value, so .HTTP.JSON is empty; use .HTTP.Body, or make the endpoint answer with JSON, e.g. \"stream\": false for Ollama)", h.Status, len(h.Body))
}
