package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hookd/hookd/ingest"
	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/planner"
	"github.com/hookd/hookd/processor"
	"github.com/hookd/hookd/processor/rules"
	"github.com/hookd/hookd/sweep"
)

// Roles a hookd process can take. Default: all of them.
const (
	RoleIngest  = "ingest"  // the webhook endpoint
	RoleProcess = "process" // the processor's consumers (handlers and rules)
	RoleSweep   = "sweep"   // the worker phase's sweeps and redeliveries
)

// AllRoles is the default role set.
var AllRoles = []string{RoleIngest, RoleProcess, RoleSweep}

// Log configures logging.
type Log struct {
	// Level: trace, debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format: json (default, for log collectors) or console (for people).
	Format string `yaml:"format"`
}

// Config is hookd's whole configuration. See hookd.example.yaml for every key with its default.
type Config struct {
	// DataDir holds the embedded JetStream store. Default "./data".
	DataDir string `yaml:"data_dir"`
	// Roles this process takes: any of ingest, process, sweep. Default all three.
	Roles []string `yaml:"roles"`
	// ShutdownTimeout bounds the graceful drain on SIGINT/SIGTERM. Default 25s.
	ShutdownTimeout time.Duration    `yaml:"shutdown_timeout"`
	Log             Log              `yaml:"log"`
	GitHub          ghapp.Config     `yaml:"github"`
	HTTP            ingest.Config    `yaml:"http"`
	NATS            broker.Config    `yaml:"nats"`
	Processor       processor.Config `yaml:"processor"`
	// Retry is hookd's one retry policy: preflights, workers and event handling.
	Retry planner.RetryPolicy `yaml:"retry"`
	// Scheduler tunes the two-phase scheduler.
	Scheduler planner.SchedulerConfig `yaml:"scheduler"`
	// Tenants selects the installations and repositories hookd serves (allow/deny lists).
	Tenants planner.Selection `yaml:"tenants"`
	// Sweep configures the worker phase's reconciliation: drift sweeps and redeliveries.
	Sweep sweep.Config `yaml:"sweep"`
	// Rules are the built-in handlers as configuration (file only; see hookd.example.yaml).
	Rules []rules.RuleConfig `yaml:"rules"`
	// RulesDir resolves run.command programs given as relative paths. Default: the working
	// directory.
	RulesDir string `yaml:"rules_dir"`
}

// Defaults fills every unset key with its documented default.
func (c *Config) Defaults() {
	if c.DataDir == "" {
		c.DataDir = "./data"
	}
	if len(c.Roles) == 0 {
		c.Roles = slices.Clone(AllRoles)
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 25 * time.Second
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	if c.NATS.DataDir == "" {
		c.NATS.DataDir = c.DataDir
	}
	c.NATS.Defaults()
	c.Retry.Defaults()
	c.GitHub.Defaults()
	// One shutdown deadline for the whole process: each part drains within it unless set apart.
	if c.HTTP.ShutdownTimeout == 0 {
		c.HTTP.ShutdownTimeout = c.ShutdownTimeout
	}
	if c.Processor.ShutdownTimeout == 0 {
		c.Processor.ShutdownTimeout = c.ShutdownTimeout * 4 / 5
	}
	if c.Scheduler.ShutdownTimeout == 0 {
		// The scheduler waits a tenth more after its deadline for cancelled passes to return.
		c.Scheduler.ShutdownTimeout = c.ShutdownTimeout * 10 / 11
	}
	c.HTTP.Defaults()
	c.Processor.Retry = c.Retry
	c.Processor.Defaults()
	c.Scheduler.Defaults()
	c.Sweep.Defaults()
}

// Validate reports every problem at once; each message names the key and what to change.
func (c *Config) Validate() error {
	var errs []error
	for _, r := range c.Roles {
		if !slices.Contains(AllRoles, r) {
			errs = append(errs, fmt.Errorf("roles: %q is not a role; use any of %s", r, strings.Join(AllRoles, ", ")))
		}
	}
	switch c.Log.Level {
	case "trace", "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q; use trace, debug, info, warn or error", c.Log.Level))
	}
	if c.Log.Format != "json" && c.Log.Format != "console" {
		errs = append(errs, fmt.Errorf("log.format: %q; use json or console", c.Log.Format))
	}
	if c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shutdown_timeout: must be positive, got %s", c.ShutdownTimeout))
	}
	// The processor validates the retry policy it is given, the top-level one (c.Processor.Retry
	// is c.Retry): check the rest of it with a valid policy so that each retry problem is
	// reported once.
	proc := c.Processor
	proc.Retry = planner.RetryPolicy{}
	proc.Retry.Defaults()
	errs = append(errs, c.NATS.Validate(), c.Retry.Validate(), c.GitHub.Validate(), c.HTTP.Validate(),
		proc.Validate(), c.Scheduler.Validate(), c.Tenants.Validate(), c.Sweep.Validate())
	if c.Sweep.RedeliveryWindow >= c.NATS.MaxAge {
		errs = append(errs, fmt.Errorf("sweep.redelivery_window (%s) must be shorter than nats.max_age (%s): deliveries GitHub can still redeliver must still be remembered, or a redelivery is stored twice; raise nats.max_age (GitHub Enterprise Server: 192h)", c.Sweep.RedeliveryWindow, c.NATS.MaxAge))
	}
	if len(c.Rules) > 0 {
		// Compile every condition and template now, so that a broken rule stops the start.
		if _, err := rules.Load(c.Rules, rules.Options{BotLogin: c.Processor.BotLogin, BaseDir: c.RulesDir}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// HasRole reports whether this process takes role r.
func (c *Config) HasRole(r string) bool { return slices.Contains(c.Roles, r) }

// Load reads the YAML file at path (none when path is empty), applies the environment on top,
// fills defaults and validates. Unknown keys in the file are errors. env is os.LookupEnv in
// production (a variable set to "" counts as unset); tests pass a map.
func Load(path string, env func(string) (string, bool)) (*Config, error) {
	if env == nil {
		env = osEnv
	}
	var c Config
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("config file: %w (pass --config FILE or set HOOKD_CONFIG)", err)
		}
		defer f.Close()
		if err := decode(f, &c); err != nil {
			return nil, fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := applyEnv(&c, env); err != nil {
		return nil, err
	}
	c.Defaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", indent(err))
	}
	return &c, nil
}

func decode(r io.Reader, c *Config) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	// Keys that are no setting, named by their path (the decoder names Go types).
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err == nil {
		if unknown := unknownKeys(&doc, reflect.TypeOf(c).Elem()); len(unknown) > 0 {
			return errors.New(strings.Join(unknown, "\n") + "\n(misspelt? hookd.example.yaml shows every key)")
		}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	// A second document (after a --- line) would be ignored, settings and typos alike.
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(more.Content) > 0 && more.Content[0].Tag != "!!null" {
			return fmt.Errorf("line %d: a second YAML document (after a --- line); hookd reads one: merge them into one document", more.Content[0].Line)
		}
	}
}

type indented struct{ err error }

func (i indented) Error() string {
	lines := strings.Split(i.err.Error(), "\n")
	for n, l := range lines {
		lines[n] = "  - " + l
	}
	return strings.Join(lines, "\n")
}
func (i indented) Unwrap() error { return i.err }

func indent(err error) error { return indented{err} }
