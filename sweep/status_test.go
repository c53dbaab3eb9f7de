package sweep

import (
	"strings"
	"testing"
	"time"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	e := setup(t, Config{})
	e.fake.SetWebhookOutage(true)
	if _, err := e.fake.OpenIssue("acme/api", "alice", "bug", ""); err != nil {
		t.Fatal(err)
	}
	guid := e.lastGUID()
	e.mode.Store(modeFail) // the redelivery fails too: it stays pending
	e.fake.SetWebhookOutage(false)
	e.fake.Advance(3 * time.Minute)
	e.sweep(e.svc, e.api)
	e.redeliver(e.svc)

	st, err := Status(e.ctx, e.broker.JS)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Installations) != 1 || st.Installations[0].InstallationID != e.inst.ID || len(st.Installations[0].Repositories) != 1 {
		t.Fatalf("installations %+v", st.Installations)
	}
	in := st.Installations[0]
	r := in.Repositories[0]
	if r.Tenant.FullName() != "acme/api" || r.LastResult != OutcomeDrift || r.LastDrift != 1 || r.Cursor.IsZero() || r.LastSweep.IsZero() {
		t.Fatalf("repository %+v", r)
	}
	if in.RateLimit != 5000 || in.RateRemaining <= 0 {
		t.Fatalf("rate %d/%d", in.RateRemaining, in.RateLimit)
	}
	if len(st.Pending) != 1 || st.Pending[0].GUID != guid || st.Pending[0].Attempt != 1 || st.Pending[0].Event != "issues" {
		t.Fatalf("pending %+v", st.Pending)
	}
	if st.Redeliver.Mark == 0 || st.Redeliver.LastResult != "ok" || st.Redeliver.Requested != 1 {
		t.Fatalf("redeliver %+v", st.Redeliver)
	}
}

func TestConfig(t *testing.T) {
	t.Parallel()
	var c Config
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
	if c.Interval != 5*time.Minute || c.MinInterval != time.Minute || c.MaxInterval != 30*time.Minute ||
		!c.RedeliverEnabled() || c.RedeliveryWindow != 72*time.Hour || c.Lookback != 72*time.Hour ||
		c.RedeliveryMinAge != 2*time.Minute || c.MaxRedeliveries != 3 || c.RedeliveriesPerPass != 50 ||
		c.RateLimitShare != 0.5 || c.InstallationsInterval != 10*time.Minute {
		t.Fatalf("defaults %+v", c)
	}
	ghes := Config{RedeliveryWindow: 168 * time.Hour}
	ghes.Defaults()
	if ghes.Lookback != 168*time.Hour {
		t.Fatalf("lookback follows the window: %s", ghes.Lookback)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"interval outside bounds", func(c *Config) { c.Interval = time.Hour }, "sweep.interval"},
		{"negative", func(c *Config) { c.MinInterval = -time.Second }, "sweep.min_interval"},
		{"share", func(c *Config) { c.RateLimitShare = 1.5 }, "sweep.rate_limit_share"},
		{"max redeliveries", func(c *Config) { c.MaxRedeliveries = -1 }, "sweep.max_redeliveries"},
		{"min age over window", func(c *Config) { c.RedeliveryMinAge = 100 * time.Hour }, "sweep.redelivery_min_age"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var c Config
			c.Defaults()
			tt.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want one naming %s", err, tt.want)
			}
		})
	}
}
