package planner

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/event"
)

// installs is the fixture installation list: acme (api, web), globex (x), suspended initech (y).
func installs() []Installation {
	return []Installation{
		{ID: 2, Account: "globex", Repositories: []Repository{{ID: 30, Owner: "globex", Name: "x"}}},
		{ID: 1, Account: "acme", Repositories: []Repository{{ID: 11, Name: "web"}, {ID: 10, Owner: "acme", Name: "api"}}},
		{ID: 3, Account: "initech", Suspended: true, Repositories: []Repository{{ID: 40, Name: "y"}}},
	}
}

func nop(context.Context, event.Tenant) error { return nil }

// specs covers every scope and both phases.
func specs() []Spec {
	return []Spec{
		{Phase: PhasePreflight, Resource: "app", Scope: Global, Kind: OneShot, Run: nop},
		{Phase: PhasePreflight, Resource: "installation", Scope: PerInstallation, Kind: OneShot, Run: nop},
		{Phase: PhasePreflight, Resource: "repository", Scope: PerRepository, Kind: OneShot, Run: nop},
		{Phase: PhaseWorker, Resource: "redeliver", Scope: Global, Kind: Interval, Interval: time.Minute, Run: nop},
		{Phase: PhaseWorker, Resource: "sweep", Scope: PerRepository, Kind: Interval, Interval: time.Hour, Run: nop},
		{Phase: PhaseWorker, Resource: "consume", Scope: PerInstallation, Kind: Service, Run: nop},
	}
}

func names(units []Unit) []string {
	out := make([]string, len(units))
	for i, u := range units {
		out[i] = u.Name
	}
	return out
}

func TestPlanner(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		specs      []Spec
		sel        Selection
		installs   []Installation
		preflights []string
		workers    []string
		excluded   []string // "fullname: reason"
		wantErr    []string // substrings; every one must appear
		noErr      []string // substrings that must not appear in the error
	}{
		{
			name:  "every tenant",
			specs: specs(),
			preflights: []string{
				"preflight:app",
				"preflight:installation:acme", "preflight:installation:globex",
				"preflight:repository:acme/api", "preflight:repository:acme/web", "preflight:repository:globex/x",
			},
			workers: []string{
				"worker:redeliver",
				"worker:sweep:acme/api", "worker:sweep:acme/web", "worker:sweep:globex/x",
				"worker:consume:acme", "worker:consume:globex",
			},
			excluded: []string{"initech: installation suspended"},
		},
		{
			name:       "allow one repository keeps its installation",
			specs:      specs()[1:3],
			sel:        Selection{Allow: []string{"acme/api"}},
			preflights: []string{"preflight:installation:acme", "preflight:repository:acme/api"},
			excluded: []string{
				"acme/web: not in tenants.allow", "globex: not in tenants.allow", "initech: installation suspended",
			},
		},
		{
			name:       "allow an account by glob, case-insensitively",
			specs:      specs()[2:3],
			sel:        Selection{Allow: []string{"GLOB*"}},
			preflights: []string{"preflight:repository:globex/x"},
			excluded:   []string{"acme: not in tenants.allow", "initech: installation suspended"},
		},
		{
			name:       "deny an account",
			specs:      specs()[1:3],
			sel:        Selection{Deny: []string{"acme"}},
			preflights: []string{"preflight:installation:globex", "preflight:repository:globex/x"},
			excluded:   []string{`acme: account denied by tenants.deny "acme"`, "initech: installation suspended"},
		},
		{
			name:       "deny wins over allow",
			specs:      specs()[2:3],
			sel:        Selection{Allow: []string{"acme/*"}, Deny: []string{"acme/w*"}},
			preflights: []string{"preflight:repository:acme/api"},
			excluded: []string{
				`acme/web: denied by tenants.deny "acme/w*"`, "globex: not in tenants.allow", "initech: installation suspended",
			},
		},
		{
			name:       "suspended installation stays out even when allowed",
			specs:      specs()[1:2],
			sel:        Selection{Allow: []string{"initech"}},
			installs:   installs()[2:],
			preflights: nil,
			excluded:   []string{"initech: installation suspended"},
		},
		{
			name: "duplicate names from configuration",
			specs: []Spec{
				{Phase: PhaseWorker, Resource: "sweep", Scope: PerRepository, Kind: Interval, Interval: time.Hour, Run: nop},
				{Phase: PhaseWorker, Resource: "sweep", Scope: PerRepository, Kind: Service, Run: nop},
			},
			wantErr: []string{`duplicate task name "worker:sweep:acme/api" from spec[0] and spec[1]`},
		},
		{
			name:  "a tenant listed twice is named, not blamed on the specs",
			specs: specs()[1:3],
			installs: []Installation{
				{ID: 1, Account: "acme", Repositories: []Repository{{ID: 10, Name: "api"}, {ID: 12, Name: "api"}}},
			},
			wantErr: []string{`duplicate task name "preflight:repository:acme/api": two per-repository tenants are named "acme/api" (the second is 1.12)`, "list the installations again"},
			noErr:   []string{"give each spec"},
		},
		{
			name: "invalid specs are all reported",
			specs: []Spec{
				{Phase: PhasePreflight, Resource: "app", Kind: Interval, Interval: time.Hour, Run: nop},
				{Phase: PhaseWorker, Resource: "sweep", Kind: Interval, Run: nop},
				{Phase: PhaseWorker, Resource: "Sweep:x", Kind: Service, Run: nop},
				{Phase: PhaseWorker, Resource: "sweep", Kind: Service},
				{Phase: PhaseWorker, Resource: "once", Kind: OneShot, Run: nop},
			},
			wantErr: []string{
				"spec[0] preflight:app: a preflight must be OneShot, not interval",
				"spec[1] worker:sweep: an Interval task needs Interval > 0",
				`spec[2] worker:Sweep:x: resource "Sweep:x" must be`,
				"spec[3] worker:sweep: Run is nil",
				"spec[4] worker:once: a worker must be Interval or Service, not one-shot",
			},
		},
		{
			name:    "malformed patterns name the setting",
			specs:   specs(),
			sel:     Selection{Allow: []string{"a/b/c"}, Deny: []string{"[x", ""}},
			wantErr: []string{"tenants.allow[0]: pattern \"a/b/c\" has more than one '/'", "tenants.deny[0]", "tenants.deny[1]"},
		},
		{
			name:     "installations without ids are errors",
			specs:    specs(),
			installs: []Installation{{Account: "acme"}, {ID: 5, Account: "b", Repositories: []Repository{{Name: "r"}}}},
			wantErr:  []string{"installation[0]: id (0) and account (\"acme\") are required", "installation b repository[0]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := tt.installs
			if in == nil {
				in = installs()
			}
			plan, err := Planner{Specs: tt.specs, Tenants: tt.sel}.Plan(in)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("Plan: no error, want %q", tt.wantErr)
				}
				for _, want := range tt.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("Plan error\n%v\nlacks %q", err, want)
					}
				}
				for _, bad := range tt.noErr {
					if strings.Contains(err.Error(), bad) {
						t.Errorf("Plan error\n%v\nsays %q", err, bad)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			assertStrings(t, "preflights", names(plan.Preflights), tt.preflights)
			assertStrings(t, "workers", names(plan.Workers), tt.workers)
			var excl []string
			for _, e := range plan.Excluded {
				excl = append(excl, e.Tenant.FullName()+": "+e.Reason)
			}
			assertStrings(t, "excluded", excl, tt.excluded)
		})
	}
}

// TestPlannerUnits checks what a unit carries: typed phase and kind, and a closure that passes
// its own tenant.
func TestPlannerUnits(t *testing.T) {
	t.Parallel()
	var got []event.Tenant
	record := func(_ context.Context, tn event.Tenant) error { got = append(got, tn); return nil }
	transient := func(error) bool { return true }
	plan, err := Planner{Specs: []Spec{
		{Phase: PhasePreflight, Resource: "installation", Scope: PerInstallation, Run: record},
		{Phase: PhaseWorker, Resource: "sweep", Scope: PerRepository, Kind: Interval, Interval: time.Hour, Run: record, Transient: transient},
		{Phase: PhaseWorker, Resource: "redeliver", Scope: Global, Kind: Service, Run: record},
	}}.Plan(installs()[:2])
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range append(plan.Preflights, plan.Workers...) {
		if err := u.Run(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	want := []event.Tenant{
		{InstallationID: 1, Owner: "acme"},
		{InstallationID: 2, Owner: "globex"},
		{InstallationID: 1, RepositoryID: 10, Owner: "acme", Name: "api"},
		{InstallationID: 1, RepositoryID: 11, Owner: "acme", Name: "web"},
		{InstallationID: 2, RepositoryID: 30, Owner: "globex", Name: "x"},
		{},
	}
	if len(got) != len(want) {
		t.Fatalf("tenants passed = %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("unit %d got tenant %+v, want %+v", i, got[i], want[i])
		}
	}
	sweep := plan.Workers[0]
	if sweep.Phase != PhaseWorker || sweep.Kind != Interval || sweep.Interval != time.Hour || sweep.Resource != "sweep" ||
		sweep.Transient == nil || sweep.Tenant != want[2] {
		t.Errorf("sweep unit = %+v", sweep)
	}
	if pf := plan.Preflights[0]; pf.Phase != PhasePreflight || pf.Kind != OneShot {
		t.Errorf("preflight unit = %+v", pf)
	}
	if len(plan.Tenants.Installations) != 2 || len(plan.Tenants.Repositories) != 3 {
		t.Errorf("plan.Tenants = %+v", plan.Tenants)
	}
}

func TestPlanValidate(t *testing.T) {
	t.Parallel()
	run := func(context.Context) error { return nil }
	err := Plan{
		Preflights: []Unit{{Name: "p", Phase: PhasePreflight, Run: run}, {Name: "p", Phase: PhasePreflight, Run: run}},
		Workers: []Unit{
			{Name: "w", Phase: PhasePreflight, Kind: Service, Run: run},
			{Phase: PhaseWorker, Kind: Interval, Run: run},
		},
	}.Validate()
	for _, want := range []string{
		`preflights[1] "p": duplicate unit name`,
		`workers[0] "w": phase is preflight`,
		`workers[1] "": unit has no name`,
		`workers[1] "": an Interval task needs Interval > 0`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want it to contain %q", err, want)
		}
	}
	if err := (Plan{}).Validate(); err != nil {
		t.Errorf("empty plan: %v", err)
	}
}

func TestSchedulerConfigValidate(t *testing.T) {
	t.Parallel()
	var c SchedulerConfig
	c.Defaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if c.ShutdownTimeout != 30*time.Second || c.StartJitter != 10*time.Second || c.Policy.MaxAttempts != 10 {
		t.Errorf("defaults = %+v", c)
	}
	c.ShutdownTimeout = -time.Second
	c.Policy.Multiplier = 0.5
	err := c.Validate()
	for _, want := range []string{"scheduler.shutdown_timeout", "retry.multiplier"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v; want %q", err, want)
		}
	}
	if _, err := NewScheduler(Plan{}, c); err == nil {
		t.Error("NewScheduler accepted an invalid config")
	}
	if _, err := NewScheduler(Plan{Workers: []Unit{{Name: "w"}}}, SchedulerConfig{}); err == nil {
		t.Error("NewScheduler accepted an invalid plan")
	}
}

func assertStrings(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}
