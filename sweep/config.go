package sweep

import (
	"errors"
	"fmt"
	"time"
)

// Config is the `sweep` configuration section. Zero fields take the documented defaults.
type Config struct {
	// Interval is how often a repository is swept at first, and the interval it returns to
	// between MinInterval and MaxInterval. Default 5m; env HOOKD_SWEEP_INTERVAL.
	Interval time.Duration `yaml:"interval"`
	// MinInterval is the shortest interval, used for active repositories (a change was found);
	// the per-repository worker wakes this often and skips repositories not yet due. Default 1m.
	MinInterval time.Duration `yaml:"min_interval"`
	// MaxInterval is the longest interval, reached by quiet repositories: after QuietPasses
	// passes without a change the interval doubles, up to this. Default 30m.
	MaxInterval time.Duration `yaml:"max_interval"`
	// QuietPasses is how many unchanged passes in a row double a repository's interval.
	// Default 3.
	QuietPasses int `yaml:"quiet_passes"`
	// DriftMinAge leaves alone issues and pull requests changed less than this ago: their
	// webhook may still be on its way or in the processor's queue. Default 2m.
	DriftMinAge time.Duration `yaml:"drift_min_age"`
	// Lookback is how far back the first sweep of a repository looks (it has no cursor yet).
	// Default: RedeliveryWindow.
	Lookback time.Duration `yaml:"lookback"`
	// RateLimitShare is the share (0..1] of an installation's hourly rate limit sweeps may use:
	// a pass is skipped while less than (1-share) of the limit remains, leaving the rest to
	// event handling. Default 0.5.
	RateLimitShare float64 `yaml:"rate_limit_share"`

	// Redeliver turns the redelivery worker on. Default true.
	Redeliver *bool `yaml:"redeliver"`
	// RedeliverInterval is how often the app's delivery log is read. Default 1m.
	RedeliverInterval time.Duration `yaml:"redeliver_interval"`
	// RedeliveryWindow is how long GitHub keeps deliveries and can redeliver them: 72h on
	// GitHub.com; GitHub Enterprise Server keeps them 7 days (168h). Default 72h.
	RedeliveryWindow time.Duration `yaml:"redelivery_window"`
	// RedeliveryMinAge leaves deliveries younger than this alone (they may still be in flight).
	// Default 2m.
	RedeliveryMinAge time.Duration `yaml:"redelivery_min_age"`
	// MaxRedeliveries is how many times one delivery (GUID) is redelivered at most. Default 3.
	MaxRedeliveries int `yaml:"max_redeliveries"`
	// RedeliveriesPerPass caps the redeliveries requested per pass; the rest wait for the next.
	// Default 50.
	RedeliveriesPerPass int `yaml:"redeliveries_per_pass"`
	// RedeliverySpacing is the pause between two redelivery requests. Default 200ms.
	RedeliverySpacing time.Duration `yaml:"redelivery_spacing"`

	// InstallationsInterval is how often installations and their repositories are re-listed as
	// a safety net; installation webhooks trigger a re-list at once. Default 10m.
	InstallationsInterval time.Duration `yaml:"installations_interval"`
}

// Defaults fills unset fields.
func (c *Config) Defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.Interval, 5*time.Minute)
	set(&c.MinInterval, time.Minute)
	set(&c.MaxInterval, 30*time.Minute)
	set(&c.DriftMinAge, 2*time.Minute)
	set(&c.RedeliverInterval, time.Minute)
	set(&c.RedeliveryWindow, 72*time.Hour)
	set(&c.Lookback, c.RedeliveryWindow)
	set(&c.RedeliveryMinAge, 2*time.Minute)
	set(&c.RedeliverySpacing, 200*time.Millisecond)
	set(&c.InstallationsInterval, 10*time.Minute)
	if c.QuietPasses == 0 {
		c.QuietPasses = 3
	}
	if c.RateLimitShare == 0 {
		c.RateLimitShare = 0.5
	}
	if c.Redeliver == nil {
		on := true
		c.Redeliver = &on
	}
	if c.MaxRedeliveries == 0 {
		c.MaxRedeliveries = 3
	}
	if c.RedeliveriesPerPass == 0 {
		c.RedeliveriesPerPass = 50
	}
}

// RedeliverEnabled reports whether the redelivery worker runs (Redeliver unset counts as true).
func (c Config) RedeliverEnabled() bool { return c.Redeliver == nil || *c.Redeliver }

// Validate reports every problem at once, each naming the setting as sweep.<key>.
func (c Config) Validate() error {
	var errs []error
	positive := func(key string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("sweep.%s: must be a positive duration (like 5m), got %s", key, d))
		}
	}
	positive("interval", c.Interval)
	positive("min_interval", c.MinInterval)
	positive("max_interval", c.MaxInterval)
	positive("drift_min_age", c.DriftMinAge)
	positive("lookback", c.Lookback)
	positive("redeliver_interval", c.RedeliverInterval)
	positive("redelivery_window", c.RedeliveryWindow)
	positive("redelivery_min_age", c.RedeliveryMinAge)
	positive("redelivery_spacing", c.RedeliverySpacing)
	positive("installations_interval", c.InstallationsInterval)
	if c.MinInterval > 0 && c.MaxInterval > 0 && (c.Interval < c.MinInterval || c.Interval > c.MaxInterval) {
		errs = append(errs, fmt.Errorf("sweep.interval: %s must lie within sweep.min_interval (%s) and sweep.max_interval (%s)", c.Interval, c.MinInterval, c.MaxInterval))
	}
	if c.MinInterval > 0 && c.MinInterval < time.Second {
		errs = append(errs, fmt.Errorf("sweep.min_interval: %s is below 1s; leases need at least a second", c.MinInterval))
	}
	if c.QuietPasses < 1 {
		errs = append(errs, fmt.Errorf("sweep.quiet_passes: want >= 1, got %d", c.QuietPasses))
	}
	if c.RateLimitShare <= 0 || c.RateLimitShare > 1 {
		errs = append(errs, fmt.Errorf("sweep.rate_limit_share: want a share in (0, 1], like 0.5, got %v", c.RateLimitShare))
	}
	if c.MaxRedeliveries < 1 {
		errs = append(errs, fmt.Errorf("sweep.max_redeliveries: want >= 1 (to turn redelivery off set sweep.redeliver: false), got %d", c.MaxRedeliveries))
	}
	if c.RedeliveriesPerPass < 1 {
		errs = append(errs, fmt.Errorf("sweep.redeliveries_per_pass: want >= 1, got %d", c.RedeliveriesPerPass))
	}
	if c.RedeliveryMinAge >= c.RedeliveryWindow && c.RedeliveryWindow > 0 {
		errs = append(errs, fmt.Errorf("sweep.redelivery_min_age: %s must be shorter than sweep.redelivery_window (%s)", c.RedeliveryMinAge, c.RedeliveryWindow))
	}
	return errors.Join(errs...)
}
