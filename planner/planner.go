package planner

import (
	"context"
	"errors"
	"fmt"

	"github.com/hookd/hookd/internal/event"
)

// Planner turns installations and task specs into a Plan. It is pure: no I/O, no clock; the
// same input gives the same plan, in spec order then tenant-name order.
type Planner struct {
	// Specs are the task templates, read top to bottom.
	Specs []Spec
	// Tenants selects the served accounts and repositories.
	Tenants Selection
}

// Plan selects the tenants (SelectTenants) and binds every spec to them (Build). The plan's
// Excluded field lists what was left out and why.
func (p Planner) Plan(installs []Installation) (Plan, error) {
	tenants, excluded, err := SelectTenants(installs, p.Tenants)
	if err != nil {
		return Plan{}, err
	}
	plan, err := Build(p.Specs, tenants)
	if err != nil {
		return Plan{}, err
	}
	plan.Excluded = excluded
	return plan, nil
}

// Build binds every spec to the tenants of its scope. Invalid specs and duplicate unit names
// (two specs with the same phase, resource and scope, or two tenants with the same name) are
// returned as errors, all at once.
func Build(specs []Spec, tenants Tenants) (Plan, error) {
	var errs []error
	for i, s := range specs {
		if err := s.validate(i); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return Plan{}, errors.Join(errs...)
	}
	plan := Plan{Tenants: tenants}
	owner := map[string]int{} // unit name -> spec index
	reported := map[[2]int]bool{}
	for i, s := range specs {
		var ts []event.Tenant
		switch s.Scope {
		case Global:
			ts = []event.Tenant{{}}
		case PerInstallation:
			ts = tenants.Installations
		case PerRepository:
			ts = tenants.Repositories
		}
		for _, t := range ts {
			u := bind(s, t)
			if j, dup := owner[u.Name]; dup {
				switch {
				case j == i: // one spec, two tenants of one name: the input lists a tenant twice
					errs = append(errs, fmt.Errorf("planner: duplicate task name %q: two %s tenants are named %q (the second is %s); the installation list names it twice, list the installations again",
						u.Name, s.Scope, t.FullName(), t.Key()))
				case !reported[[2]int{j, i}]:
					reported[[2]int{j, i}] = true
					errs = append(errs, fmt.Errorf("planner: duplicate task name %q from spec[%d] and spec[%d]; give each spec its own phase and resource", u.Name, j, i))
				}
				continue
			}
			owner[u.Name] = i
			if s.Phase == PhasePreflight {
				plan.Preflights = append(plan.Preflights, u)
			} else {
				plan.Workers = append(plan.Workers, u)
			}
		}
	}
	if len(errs) > 0 {
		return Plan{}, errors.Join(errs...)
	}
	return plan, nil
}

// bind makes the unit of spec s for tenant t; the closure captures t.
func bind(s Spec, t event.Tenant) Unit {
	name := s.Phase.String() + ":" + s.Resource
	if full := t.FullName(); full != "" {
		name += ":" + full
	}
	run := s.Run
	return Unit{
		Name:      name,
		Phase:     s.Phase,
		Resource:  s.Resource,
		Kind:      s.Kind,
		Interval:  s.Interval,
		Tenant:    t,
		Run:       func(ctx context.Context) error { return run(ctx, t) },
		Transient: s.Transient,
	}
}
