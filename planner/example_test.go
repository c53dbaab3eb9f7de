package planner_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/planner"
)

// A preflight and an interval worker, both per repository, planned for two tenants and run:
// the preflights pass, each worker makes its first pass, and the scheduler drains on cancel.
func Example() {
	var (
		mu     sync.Mutex
		events []string
		passes sync.WaitGroup
	)
	record := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, s)
	}
	passes.Add(2)

	p := planner.Planner{
		Specs: []planner.Spec{{
			Phase:    planner.PhasePreflight,
			Resource: "repository",
			Scope:    planner.PerRepository,
			Run: func(ctx context.Context, t event.Tenant) error {
				record("checked " + t.FullName()) // e.g. GET /repos/{owner}/{name}
				return nil
			},
		}, {
			Phase:    planner.PhaseWorker,
			Resource: "sweep",
			Scope:    planner.PerRepository,
			Kind:     planner.Interval,
			Interval: time.Hour,
			Run: func(ctx context.Context, t event.Tenant) error { // one pass
				record("swept " + t.FullName())
				passes.Done()
				return nil
			},
		}},
		Tenants: planner.Selection{Deny: []string{"acme/legacy"}},
	}
	plan, err := p.Plan([]planner.Installation{{
		ID: 1, Account: "acme",
		Repositories: []planner.Repository{{ID: 10, Name: "api"}, {ID: 11, Name: "web"}, {ID: 12, Name: "legacy"}},
	}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, u := range slices.Concat(plan.Preflights, plan.Workers) {
		fmt.Println(u.Name)
	}
	for _, x := range plan.Excluded {
		fmt.Printf("excluded %s: %s\n", x.Tenant.FullName(), x.Reason)
	}

	s, err := planner.NewScheduler(plan, planner.SchedulerConfig{StartJitter: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	passes.Wait()
	cancel()
	fmt.Println("run:", <-done)

	slices.Sort(events)
	for _, e := range events {
		fmt.Println(e)
	}
	// Output:
	// preflight:repository:acme/api
	// preflight:repository:acme/web
	// worker:sweep:acme/api
	// worker:sweep:acme/web
	// excluded acme/legacy: denied by tenants.deny "acme/legacy"
	// run: <nil>
	// checked acme/api
	// checked acme/web
	// swept acme/api
	// swept acme/web
}
