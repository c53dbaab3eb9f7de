package processor

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hookd/hookd/internal/event"
)

// Handler handles one event. It is called at least once per stored event it is registered for,
// and again after it fails, until it succeeds or the event is dead-lettered; effects that must
// happen once go through ev.Ledger (or the built-in effects, which do). The context is cancelled
// at Config.HandlerTimeout and when shutdown runs out of time.
type Handler interface {
	Handle(ctx context.Context, ev *Event) error
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, ev *Event) error

// Handle calls f.
func (f HandlerFunc) Handle(ctx context.Context, ev *Event) error { return f(ctx, ev) }

// Filter selects the events a handler receives. Build one with On.
type Filter struct{ patterns []string }

// On selects events by name ("issues": every action) or by name and action ("issues.opened").
// "*" selects every event. ping events are never dispatched, whatever the filter.
func On(patterns ...string) Filter { return Filter{patterns: slices.Clone(patterns)} }

func (f Filter) match(m event.Meta) bool {
	for _, p := range f.patterns {
		if p == "*" || p == m.Event {
			return true
		}
		if name, action, ok := strings.Cut(p, "."); ok && name == m.Event && action == m.Action {
			return true
		}
	}
	return false
}

func (f Filter) validate() error {
	if len(f.patterns) == 0 {
		return fmt.Errorf("empty filter: use processor.On(\"issues.opened\", ...) or processor.On(\"*\")")
	}
	for _, p := range f.patterns {
		if p == "*" {
			continue
		}
		name, action, hasAction := strings.Cut(p, ".")
		if !event.ValidEventName(name) || hasAction && (action == "" || strings.Contains(action, ".")) {
			return fmt.Errorf("filter pattern %q: want \"<event>\" or \"<event>.<action>\", e.g. \"issues.opened\"", p)
		}
	}
	return nil
}

// HandleOption tunes one registration.
type HandleOption func(*route)

// AllowBotEvents lets the handler receive events sent by this app's own bot (Config.BotLogin).
// By default they are filtered out so that a handler's own effects do not trigger it again.
func AllowBotEvents() HandleOption { return func(r *route) { r.allowBot = true } }

// WithTimeout overrides Config.HandlerTimeout for this handler.
func WithTimeout(d time.Duration) HandleOption { return func(r *route) { r.timeout = d } }

type route struct {
	name     string
	filter   Filter
	h        Handler
	allowBot bool
	timeout  time.Duration
}

// Mux is the list of registered handlers, read top to bottom: for an event, every matching
// handler runs, one after the other, in registration order. The zero Mux is empty and ready to
// use. Register everything before passing the Mux to New; New takes a snapshot.
type Mux struct {
	mu     sync.Mutex
	routes []route
}

// Handle registers h under name for the events f selects. The name identifies the handler in the
// effect ledger, in dead letters and in metrics: keep it stable across releases. It must be 1..64
// letters, digits, '-' or '_', and unique: registering a name twice is an error.
func (m *Mux) Handle(name string, f Filter, h Handler, opts ...HandleOption) error {
	if !validName(name) {
		return fmt.Errorf("handler name %q: use 1..64 letters, digits, '-' and '_'", name)
	}
	if h == nil {
		return fmt.Errorf("handler %q: nil Handler", name)
	}
	if err := f.validate(); err != nil {
		return fmt.Errorf("handler %q: %w", name, err)
	}
	r := route{name: name, filter: f, h: h}
	for _, o := range opts {
		o(&r)
	}
	if r.timeout < 0 {
		return fmt.Errorf("handler %q: negative timeout %s", name, r.timeout)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range m.routes {
		if e.name == name {
			return fmt.Errorf("handler %q is already registered: handler names must be unique", name)
		}
	}
	m.routes = append(m.routes, r)
	return nil
}

// HandleFunc is Handle for a function.
func (m *Mux) HandleFunc(name string, f Filter, fn func(ctx context.Context, ev *Event) error, opts ...HandleOption) error {
	return m.Handle(name, f, HandlerFunc(fn), opts...)
}

// Names lists the registered handlers in order.
func (m *Mux) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]string, len(m.routes))
	for i, r := range m.routes {
		out[i] = r.name
	}
	return out
}

// Events lists, sorted, the event names the registered handlers select by name ("issues" for
// "issues.opened"). Handlers on "*" add nothing: they take whatever comes.
func (m *Mux) Events() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []string
	for _, r := range m.routes {
		for _, p := range r.filter.patterns {
			if name, _, _ := strings.Cut(p, "."); name != "*" && !slices.Contains(out, name) {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (m *Mux) snapshot() []route {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.routes)
}
