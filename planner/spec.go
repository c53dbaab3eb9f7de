package planner

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hookd/hookd/internal/event"
)

// Scope says which tenants a spec is bound to.
type Scope int

const (
	// Global specs make one unit with the zero tenant, named "{phase}:{resource}".
	Global Scope = iota
	// PerInstallation specs make one unit per served installation, named
	// "{phase}:{resource}:{account}"; the tenant has InstallationID and Owner set.
	PerInstallation
	// PerRepository specs make one unit per served repository, named
	// "{phase}:{resource}:{owner}/{name}"; the tenant has every field set.
	PerRepository
)

// String returns "global", "per-installation" or "per-repository".
func (s Scope) String() string {
	switch s {
	case Global:
		return "global"
	case PerInstallation:
		return "per-installation"
	case PerRepository:
		return "per-repository"
	default:
		return fmt.Sprintf("Scope(%d)", int(s))
	}
}

// Kind says how the scheduler runs a unit.
type Kind int

const (
	// OneShot units run once to success (with retries); every preflight is one.
	OneShot Kind = iota
	// Interval units run one pass every Interval: Run is the pass (river's runOnce), the
	// scheduler owns the loop. The first pass waits a random start jitter.
	Interval
	// Service units run until their context ends (Run blocks); the processor's consumers are
	// services. A service that returns is restarted per the retry policy.
	Service
)

// String returns "one-shot", "interval" or "service".
func (k Kind) String() string {
	switch k {
	case OneShot:
		return "one-shot"
	case Interval:
		return "interval"
	case Service:
		return "service"
	default:
		return fmt.Sprintf("Kind(%d)", int(k))
	}
}

// Spec is a task template: what to run, in which phase, for which tenants. The Planner binds it
// to every tenant of its Scope, giving one Unit each.
type Spec struct {
	// Phase is PhasePreflight (Kind must be OneShot) or PhaseWorker (Kind Interval or Service).
	Phase Phase
	// Resource is what the task is about, the middle of the unit name: "repository",
	// "installation", "app", "sweep", "redeliver". Lower-case letters, digits, '-', '_' and '.'.
	// It is also the metrics label, so it must not contain tenant data.
	Resource string
	// Scope binds the spec to no tenant, each installation, or each repository.
	Scope Scope
	// Kind is how the unit runs.
	Kind Kind
	// Interval between the end of one pass and the start of the next; Interval kind only.
	Interval time.Duration
	// Transient optionally declares more errors transient: an error that Classify leaves
	// Unknown and for which Transient returns true is retried with the normal backoff.
	Transient func(error) bool
	// Run is the work. For OneShot it is the check, for Interval one pass, for Service the
	// loop that returns when ctx ends. t is the unit's tenant (zero for Global).
	Run func(ctx context.Context, t event.Tenant) error
}

// Unit is a spec bound to a tenant: the thing the scheduler runs. Units are identified by Name.
type Unit struct {
	// Name is "{phase}:{resource}[:{tenant}]", unique in a plan; logs carry it as field task.
	Name string
	// Phase, Resource, Kind and Interval are copied from the spec.
	Phase    Phase
	Resource string
	Kind     Kind
	Interval time.Duration
	// Tenant is the tenant the closure captured (zero for global units).
	Tenant event.Tenant
	// Run runs the spec's Run for Tenant.
	Run func(ctx context.Context) error
	// Transient is the spec's extra classification (may be nil).
	Transient func(error) bool
}

// Plan is the output of the Planner: typed data the Scheduler runs.
type Plan struct {
	// Preflights run first, concurrently; all must pass before any worker starts.
	Preflights []Unit
	// Workers are the interval tasks and services of phase 2.
	Workers []Unit
	// Tenants is the tenant set the plan was made for.
	Tenants Tenants
	// Excluded lists the installations and repositories left out, each with the reason.
	Excluded []Exclusion
}

// Validate checks what the Scheduler relies on: names unique and non-empty, Run set,
// preflights one-shot, workers Interval (with a positive interval) or Service. Plans made by the
// Planner always pass; it exists for hand-built units.
func (p Plan) Validate() error {
	var errs []error
	seen := make(map[string]bool, len(p.Preflights)+len(p.Workers))
	check := func(list string, i int, u Unit, phase Phase) {
		where := fmt.Sprintf("planner: %s[%d] %q", list, i, u.Name)
		switch {
		case u.Name == "":
			errs = append(errs, fmt.Errorf("%s: unit has no name", where))
		case seen[u.Name]:
			errs = append(errs, fmt.Errorf("%s: duplicate unit name; every unit needs its own", where))
		}
		seen[u.Name] = true
		if u.Run == nil {
			errs = append(errs, fmt.Errorf("%s: Run is nil", where))
		}
		if u.Phase != phase {
			errs = append(errs, fmt.Errorf("%s: phase is %s; put it in the %s list", where, u.Phase, u.Phase))
		}
		errs = append(errs, checkKind(where, u.Phase, u.Kind, u.Interval)...)
	}
	for i, u := range p.Preflights {
		check("preflights", i, u, PhasePreflight)
	}
	for i, u := range p.Workers {
		check("workers", i, u, PhaseWorker)
	}
	return errors.Join(errs...)
}

func checkKind(where string, phase Phase, kind Kind, interval time.Duration) []error {
	var errs []error
	switch phase {
	case PhasePreflight:
		if kind != OneShot {
			errs = append(errs, fmt.Errorf("%s: a preflight must be OneShot, not %s", where, kind))
		}
	case PhaseWorker:
		if kind != Interval && kind != Service {
			errs = append(errs, fmt.Errorf("%s: a worker must be Interval or Service, not %s", where, kind))
		}
	default:
		errs = append(errs, fmt.Errorf("%s: unknown phase %d; use PhasePreflight or PhaseWorker", where, int(phase)))
	}
	if kind == Interval && interval <= 0 {
		errs = append(errs, fmt.Errorf("%s: an Interval task needs Interval > 0, got %s", where, interval))
	}
	return errs
}

func (s Spec) validate(i int) error {
	where := fmt.Sprintf("planner: spec[%d] %s:%s", i, s.Phase, s.Resource)
	var errs []error
	if !validResource(s.Resource) {
		errs = append(errs, fmt.Errorf("%s: resource %q must be non-empty lower-case letters, digits, '-', '_' or '.'", where, s.Resource))
	}
	if s.Scope != Global && s.Scope != PerInstallation && s.Scope != PerRepository {
		errs = append(errs, fmt.Errorf("%s: unknown scope %d; use Global, PerInstallation or PerRepository", where, int(s.Scope)))
	}
	if s.Run == nil {
		errs = append(errs, fmt.Errorf("%s: Run is nil", where))
	}
	errs = append(errs, checkKind(where, s.Phase, s.Kind, s.Interval)...)
	return errors.Join(errs...)
}

func validResource(r string) bool {
	if r == "" {
		return false
	}
	return strings.IndexFunc(r, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}) < 0
}
