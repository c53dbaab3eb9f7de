package ingest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config is the `http` section of hookd's configuration. The zero value, after Defaults, listens
// on :8080 and serves the webhook at POST /webhook.
type Config struct {
	// Addr is the listen address of the HTTP server. Default ":8080".
	Addr string `yaml:"addr"`
	// Path is the webhook route. Default "/webhook".
	Path string `yaml:"path"`
	// PathPrefix is prepended to Path, for a server behind an ingress that routes a prefix to hookd
	// without stripping it, e.g. "/hookd" gives POST /hookd/webhook. Default "" (none).
	// /healthz, /readyz and /metrics are served without the prefix.
	PathPrefix string `yaml:"path_prefix"`
	// MaxBodyBytes is the largest body accepted; larger deliveries get 413 and are read no
	// further. Default 25 MiB (GitHub's own cap on payloads).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// PublishTimeout bounds the wait for JetStream to acknowledge the stored delivery; past it the
	// delivery gets 503. Default 5s.
	PublishTimeout time.Duration `yaml:"publish_timeout"`
	// ReadHeaderTimeout bounds reading the request headers. Default 2s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds reading the whole request, body included; a client that stalls is cut
	// off (408). Default 8s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// HandlerTimeout bounds a webhook request's handling, from when its headers are read to the
	// answer; with read_header_timeout before it, it must stay under GitHub's 10s delivery
	// timeout. Default 9s.
	HandlerTimeout time.Duration `yaml:"handler_timeout"`
	// ShutdownTimeout bounds the graceful shutdown: requests in flight get this long to be stored
	// and answered before connections are closed. Default 20s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// RetryAfter is advertised in the Retry-After header of 503 answers, in whole seconds
	// (rounded up). Default 5s.
	RetryAfter time.Duration `yaml:"retry_after"`
}

// DefaultMaxBodyBytes is GitHub's cap on webhook payloads.
const DefaultMaxBodyBytes = 25 << 20

// githubTimeout is how long github.com waits for an answer to a delivery.
const githubTimeout = 10 * time.Second

// Defaults fills unset fields with their documented defaults.
func (c *Config) Defaults() {
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.Path == "" {
		c.Path = "/webhook"
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = 5 * time.Second
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 2 * time.Second
	}
	if c.ReadTimeout == 0 {
		c.ReadTimeout = 8 * time.Second
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = 9 * time.Second
	}
	if c.ShutdownTimeout == 0 {
		c.ShutdownTimeout = 20 * time.Second
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = 5 * time.Second
	}
}

// Validate reports every problem at once, each naming the setting to change.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		add("http.addr: %q is not host:port (e.g. \":8080\"): %v", c.Addr, err)
	}
	if err := validPath(c.Path); err != "" {
		add("http.path: %q %s", c.Path, err)
	}
	if c.PathPrefix != "" {
		if err := validPath(c.PathPrefix); err != "" {
			add("http.path_prefix: %q %s", c.PathPrefix, err)
		}
	}
	if route := c.PathPrefix + c.Path; route == "/healthz" || route == "/readyz" || route == "/metrics" {
		add("http.path: %q is taken by the health and metrics routes; use e.g. /webhook", route)
	}
	if c.MaxBodyBytes < 1<<10 || c.MaxBodyBytes > 32<<20 {
		add("http.max_body_bytes: %d is out of range 1 KiB..32 MiB; GitHub sends up to 25 MiB (the default)", c.MaxBodyBytes)
	}
	positive := func(key string, d time.Duration) bool {
		if d <= 0 {
			add("http.%s: must be positive, got %s", key, d)
			return false
		}
		return true
	}
	ok := positive("publish_timeout", c.PublishTimeout)
	ok = positive("read_header_timeout", c.ReadHeaderTimeout) && ok
	ok = positive("read_timeout", c.ReadTimeout) && ok
	ok = positive("handler_timeout", c.HandlerTimeout) && ok
	positive("shutdown_timeout", c.ShutdownTimeout)
	positive("retry_after", c.RetryAfter)
	if ok {
		if c.HandlerTimeout >= githubTimeout {
			add("http.handler_timeout: %s must be under GitHub's %s delivery timeout, or GitHub counts the delivery as failed while hookd may still store it; keep the default 9s (GitHub Enterprise Server waits 30s, but the same setting has to work for github.com)", c.HandlerTimeout, githubTimeout)
		}
		if c.ReadHeaderTimeout > c.ReadTimeout {
			add("http.read_header_timeout: %s is longer than http.read_timeout %s, which covers the headers too", c.ReadHeaderTimeout, c.ReadTimeout)
		}
		if c.ReadTimeout >= c.HandlerTimeout {
			add("http.read_timeout: %s must be shorter than http.handler_timeout %s, to leave time to store the delivery", c.ReadTimeout, c.HandlerTimeout)
		}
		if c.PublishTimeout >= c.HandlerTimeout {
			add("http.publish_timeout: %s must be shorter than http.handler_timeout %s", c.PublishTimeout, c.HandlerTimeout)
		}
	}
	return errors.Join(errs...)
}

// validPath returns what is wrong with an HTTP route path, or "".
func validPath(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "must start with /"
	case len(p) > 1 && strings.HasSuffix(p, "/"):
		return "must not end with /"
	case p == "/":
		return "must not be / alone"
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '-' || c == '_' || c == '.') {
			return "may only contain letters, digits, '/', '-', '_' and '.'"
		}
	}
	if strings.Contains(p, "//") || strings.Contains(p, "/./") || strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") || strings.HasSuffix(p, "/.") {
		return "must be a clean path"
	}
	return ""
}
