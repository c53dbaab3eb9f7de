package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// RuleConfig is one entry of the `rules:` list of the hookd configuration.
type RuleConfig struct {
	// Name identifies the rule in logs, metrics, comment markers and the effect ledger. Required,
	// unique, letters, digits, '-' and '_' (at most 64).
	Name string `yaml:"name"`
	// On lists the events that trigger the rule: an event name ("issues") matches every action,
	// "event.action" ("issues.opened") only that action. Required. A single string is accepted.
	On Events `yaml:"on"`
	// If is an optional CEL condition over the event; the rule runs only when it is true. See
	// the package documentation of Load for the variables and helpers.
	If string `yaml:"if"`
	// Reconcile makes the rule also run on drift found by the sweep (synthetic events). Default
	// false: only webhook deliveries (and replays) trigger it.
	Reconcile bool `yaml:"reconcile"`
	// Concurrency caps how many executions of this rule run at once across the whole deployment.
	// An execution waits for a free slot only as long as still leaves its steps their whole
	// timeouts (about 2 minutes); then its event is handed back and tried again 30s later, in
	// its repository's order. Default 0: unlimited.
	Concurrency int `yaml:"concurrency"`
	// DryRun logs what the rule would do and does nothing. Default false.
	DryRun bool `yaml:"dry_run"`
	// AllowBots lets events sent by this app's own bot trigger the rule. Default false, which
	// keeps a rule from triggering itself (a comment it posts, a label it adds).
	AllowBots bool `yaml:"allow_bots"`
	// Run runs an external command. Optional.
	Run *RunConfig `yaml:"run"`
	// HTTP sends a request. Optional.
	HTTP *HTTPConfig `yaml:"http"`
	// Comment posts a comment on the issue or pull request of the event. Optional.
	Comment *CommentConfig `yaml:"comment"`
	// Labels adds and removes labels on the issue or pull request of the event. Optional.
	Labels *LabelsConfig `yaml:"labels"`
}

// RunConfig is a rule's run step: an external command.
type RunConfig struct {
	// Command is the argv: the program and its arguments, never a shell string. A program path
	// containing '/' is relative to Options.BaseDir; a bare name is looked up in PATH. Required.
	Command []string `yaml:"command"`
	// Timeout bounds the command; on expiry its process group is killed. Default 10m.
	Timeout time.Duration `yaml:"timeout"`
	// Token gives the command a GitHub token for the event's repository only (see the package
	// documentation). Default false.
	Token bool `yaml:"token"`
	// Permissions narrows the token: GitHub App permission name → "read" or "write". Default
	// {contents: read, issues: read, pull_requests: read, metadata: read}. Only with token: true.
	Permissions map[string]string `yaml:"permissions"`
	// Env adds fixed environment variables. Names must not start with HOOKD_ or be GITHUB_TOKEN,
	// GH_TOKEN or GIT_ASKPASS.
	Env map[string]string `yaml:"env"`
}

// HTTPConfig is a rule's http step: one request.
type HTTPConfig struct {
	// Method is the HTTP method. Default POST when Body is set, else GET.
	Method string `yaml:"method"`
	// URL is a template for an http or https URL. Required.
	URL string `yaml:"url"`
	// Headers are templates for request headers.
	Headers map[string]string `yaml:"headers"`
	// Body is a template for the request body; use the json helper to embed values in JSON.
	Body string `yaml:"body"`
	// Timeout bounds the request, body included. Default 30s.
	Timeout time.Duration `yaml:"timeout"`
}

// CommentConfig is a rule's comment step.
type CommentConfig struct {
	// Body is a template for the comment. Required. Bodies over GitHub's limit (65536
	// characters) are cut, with a note. A body that renders blank (e.g. {{ .Run.Stdout }} of a
	// command that printed nothing) posts nothing and leaves an earlier upsert comment as it was.
	Body string `yaml:"body"`
	// Mode is "upsert" (default): one comment per rule per issue, edited in place; or "append":
	// a new comment each time the rule runs.
	Mode string `yaml:"mode"`
}

// Comment modes.
const (
	ModeUpsert = "upsert"
	ModeAppend = "append"
)

// LabelsConfig is a rule's labels step. Adding a present label and removing an absent one are
// no-ops.
type LabelsConfig struct {
	// Add lists labels to add.
	Add []string `yaml:"add"`
	// Remove lists labels to remove.
	Remove []string `yaml:"remove"`
}

// Events is the `on` list; it also decodes from a single string.
type Events []string

// UnmarshalYAML accepts a sequence of strings or one string.
func (e *Events) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		var s string
		if err := n.Decode(&s); err != nil {
			return err
		}
		*e = Events{s}
		return nil
	}
	var list []string
	if err := n.Decode(&list); err != nil {
		return err
	}
	*e = list
	return nil
}

// Document is a configuration document holding a `rules:` section; other top-level keys are
// kept in Other and ignored here.
type Document struct {
	Rules []RuleConfig         `yaml:"rules"`
	Other map[string]yaml.Node `yaml:",inline"`
}

// Parse decodes the `rules:` section of a YAML configuration document. Unknown keys inside a
// rule are errors (with their line), so a typo such as `comand:` fails instead of being ignored;
// other top-level sections are ignored.
func Parse(data []byte) ([]RuleConfig, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc Document
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil
		}
		return nil, fmt.Errorf("rules: %w", err)
	}
	return doc.Rules, nil
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
	eventRE  = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)?$`)
	methodRE = regexp.MustCompile(`^[A-Z]+$`)
	labelOK  = func(s string) bool { return s != "" && len(s) <= 100 }
)

// headerNameRE is an HTTP header name (an RFC 9110 token).
var headerNameRE = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

// Defaults for the steps.
const (
	DefaultRunTimeout  = 10 * time.Minute
	DefaultHTTPTimeout = 30 * time.Second
)

// DefaultPermissions are the token permissions of a run step with token: true and no
// permissions of its own.
func DefaultPermissions() map[string]string {
	return map[string]string{"contents": "read", "issues": "read", "pull_requests": "read", "metadata": "read"}
}

// Defaults fills unset fields with their documented defaults.
func (c *RuleConfig) Defaults() {
	if c.Run != nil {
		if c.Run.Timeout == 0 {
			c.Run.Timeout = DefaultRunTimeout
		}
		if c.Run.Token && len(c.Run.Permissions) == 0 {
			c.Run.Permissions = DefaultPermissions()
		}
	}
	if c.HTTP != nil {
		if c.HTTP.Timeout == 0 {
			c.HTTP.Timeout = DefaultHTTPTimeout
		}
		if c.HTTP.Method == "" {
			c.HTTP.Method = "GET"
			if c.HTTP.Body != "" {
				c.HTTP.Method = "POST"
			}
		}
	}
	if c.Comment != nil && c.Comment.Mode == "" {
		c.Comment.Mode = ModeUpsert
	}
}

// Validate reports the settings of one rule that cannot work (CEL and templates are checked by
// Load). Messages name the setting as rules[<name>].<key>.
func (c RuleConfig) Validate() error {
	var errs []error
	p := c.prefix()
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s.%s: %s", p, key, fmt.Sprintf(format, args...)))
	}
	if !nameRE.MatchString(c.Name) {
		bad("name", "want 1-64 letters, digits, '-' or '_' starting with a letter or digit, got %q", c.Name)
	}
	if len(c.On) == 0 {
		bad("on", "list at least one event, e.g. [issues.opened]")
	}
	for _, ev := range c.On {
		if !eventRE.MatchString(ev) {
			bad("on", "want an event name or event.action such as issues or issues.opened, got %q", ev)
		}
	}
	if c.Concurrency < 0 {
		bad("concurrency", "want >= 0 (0 is unlimited), got %d", c.Concurrency)
	}
	if c.Run == nil && c.HTTP == nil && c.Comment == nil && c.Labels == nil {
		bad("run", "the rule does nothing: add at least one step (run, http, comment or labels)")
	}
	if r := c.Run; r != nil {
		if len(r.Command) == 0 || r.Command[0] == "" {
			bad("run.command", "want an argv such as [examples/agents/triage.sh, --model, qwen2.5-coder:7b]")
		}
		if r.Timeout < 0 {
			bad("run.timeout", "want a positive duration such as 10m, got %s", r.Timeout)
		}
		if len(r.Permissions) > 0 && !r.Token {
			bad("run.permissions", "only used with token: true; set token: true or remove permissions")
		}
		for k, v := range r.Permissions {
			if v != "read" && v != "write" {
				bad("run.permissions."+k, "want read or write, got %q", v)
			}
		}
		for k := range r.Env {
			if k == "" || strings.HasPrefix(k, "HOOKD_") || k == "GITHUB_TOKEN" || k == "GH_TOKEN" || k == "GIT_ASKPASS" {
				bad("run.env", "%q is reserved or empty; choose another name", k)
			}
		}
	}
	if h := c.HTTP; h != nil {
		if h.URL == "" {
			bad("http.url", "want a URL such as http://127.0.0.1:11434/api/generate")
		}
		if h.Timeout < 0 {
			bad("http.timeout", "want a positive duration such as 30s, got %s", h.Timeout)
		}
		if !methodRE.MatchString(h.Method) && h.Method != "" {
			bad("http.method", "want an upper-case method such as POST, got %q", h.Method)
		}
		for k := range h.Headers {
			if !headerNameRE.MatchString(k) {
				bad("http.headers", "%q is not a header name (letters, digits and !#$%%&'*+-.^_`|~, no spaces)", k)
			}
		}
	}
	if cm := c.Comment; cm != nil {
		if cm.Body == "" {
			bad("comment.body", "want a template such as \"{{ .Run.Stdout }}\"")
		}
		if cm.Mode != "" && cm.Mode != ModeUpsert && cm.Mode != ModeAppend {
			bad("comment.mode", "want upsert or append, got %q", cm.Mode)
		}
	}
	if l := c.Labels; l != nil {
		if len(l.Add) == 0 && len(l.Remove) == 0 {
			bad("labels", "list labels under add or remove")
		}
		for _, s := range append(append([]string(nil), l.Add...), l.Remove...) {
			if s == "" || utf8.RuneCountInString(s) > 100 {
				bad("labels", "want label names of 1-100 characters, got %q", s)
			}
		}
	}
	return errors.Join(errs...)
}

func (c RuleConfig) prefix() string {
	if c.Name == "" {
		return "rules[?]"
	}
	return "rules[" + c.Name + "]"
}
