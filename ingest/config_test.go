package ingest_test

import (
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/ingest"
)

func TestConfig(t *testing.T) {
	var d ingest.Config
	d.Defaults()
	if d.Addr != ":8080" || d.Path != "/webhook" || d.MaxBodyBytes != 25<<20 || d.PublishTimeout != 5*time.Second ||
		d.ReadHeaderTimeout != 2*time.Second || d.ReadTimeout != 8*time.Second || d.HandlerTimeout != 9*time.Second ||
		d.ShutdownTimeout != 20*time.Second || d.RetryAfter != 5*time.Second {
		t.Fatalf("defaults: %+v", d)
	}
	for _, tc := range []struct {
		name string
		mod  func(*ingest.Config)
		want string
	}{
		{"defaults", func(*ingest.Config) {}, ""},
		{"prefix", func(c *ingest.Config) { c.PathPrefix = "/hookd" }, ""},
		{"bad addr", func(c *ingest.Config) { c.Addr = "8080" }, "http.addr"},
		{"relative path", func(c *ingest.Config) { c.Path = "webhook" }, "http.path"},
		{"prefix with trailing slash", func(c *ingest.Config) { c.PathPrefix = "/hookd/" }, "http.path_prefix"},
		{"path taken", func(c *ingest.Config) { c.Path = "/healthz" }, "taken"},
		{"tiny body limit", func(c *ingest.Config) { c.MaxBodyBytes = 10 }, "http.max_body_bytes"},
		{"handler timeout at GitHub's", func(c *ingest.Config) { c.HandlerTimeout = 10 * time.Second }, "GitHub Enterprise Server waits 30s"},
		{"read timeout over handler", func(c *ingest.Config) { c.ReadTimeout = 9 * time.Second }, "http.read_timeout"},
		{"publish timeout over handler", func(c *ingest.Config) { c.PublishTimeout = 9 * time.Second }, "http.publish_timeout"},
		{"header timeout over read", func(c *ingest.Config) { c.ReadHeaderTimeout = 8500 * time.Millisecond }, "http.read_header_timeout"},
		{"negative retry", func(c *ingest.Config) { c.RetryAfter = -time.Second }, "http.retry_after"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := d
			tc.mod(&c)
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %q", err, tc.want)
			}
		})
	}
}
