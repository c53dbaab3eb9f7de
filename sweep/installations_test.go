package sweep

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/githubfake"
	"github.com/hookd/hookd/planner"
	"github.com/hookd/hookd/processor"
)

// accounts lists "account(repo,repo)" per installation, "account(suspended)" when suspended.
func accounts(list []planner.Installation) string {
	var out []string
	for _, in := range list {
		if in.Suspended {
			out = append(out, in.Account+"(suspended)")
			continue
		}
		var repos []string
		for _, r := range in.Repositories {
			repos = append(repos, r.Name)
		}
		out = append(out, in.Account+"("+strings.Join(repos, ",")+")")
	}
	return strings.Join(out, " ")
}

func TestInstallations(t *testing.T) {
	t.Parallel()

	t.Run("added and removed installations and repositories reach Apply", func(t *testing.T) {
		t.Parallel()
		var applied []string
		e := setup(t, Config{}, func(o *Options) {
			o.Apply = func(_ context.Context, list []planner.Installation) error {
				applied = append(applied, accounts(list))
				return nil
			}
		})
		step := func(want string) {
			t.Helper()
			rep, err := e.svc.installationsOnce(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Applied || applied[len(applied)-1] != want {
				t.Fatalf("applied %q (report %+v), want %q", applied, rep, want)
			}
		}
		step("acme(api,web)")
		if rep, _ := e.svc.installationsOnce(e.ctx); rep.Applied || len(applied) != 1 {
			t.Fatalf("unchanged listing applied again: %+v", rep)
		}
		beta, err := e.fake.AddInstallation("beta", "one")
		if err != nil {
			t.Fatal(err)
		}
		step("acme(api,web) beta(one)")
		if err := e.fake.AddRepositories(beta.ID, "two"); err != nil {
			t.Fatal(err)
		}
		step("acme(api,web) beta(one,two)")
		if err := e.fake.SuspendInstallation(beta.ID, true); err != nil {
			t.Fatal(err)
		}
		step("acme(api,web) beta(suspended)")
		if err := e.fake.RemoveInstallation(beta.ID); err != nil {
			t.Fatal(err)
		}
		step("acme(api,web)")
	})

	t.Run("an installation event triggers a re-list on the running worker", func(t *testing.T) {
		t.Parallel()
		applied := make(chan string, 4)
		e := setup(t, Config{InstallationsInterval: time.Hour}, func(o *Options) {
			o.Apply = func(_ context.Context, list []planner.Installation) error {
				applied <- accounts(list)
				return nil
			}
		})
		e.svc.SetInstallations(nil) // what cmd/hookd planned with: nothing yet
		h := e.svc.InstallationsHandler()
		signal := func() {
			t.Helper()
			if err := h.Handle(e.ctx, &processor.Event{Meta: event.Meta{Event: "installation", Delivery: "d1"}}); err != nil {
				t.Fatal(err)
			}
		}
		signal() // before the worker runs: a left-over signal triggers one re-list at start
		ctx, cancel := context.WithCancel(e.ctx)
		done := make(chan error, 1)
		go func() { done <- e.svc.RunInstallations(ctx) }()
		if got := <-applied; got != "acme(api,web)" {
			t.Fatalf("applied %q", got)
		}
		if _, err := e.fake.AddInstallation("beta", "one"); err != nil {
			t.Fatal(err)
		}
		signal()
		if got := <-applied; got != "acme(api,web) beta(one)" {
			t.Fatalf("applied %q", got)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("RunInstallations: %v", err)
		}
	})

	t.Run("Apply errors are reported and retried", func(t *testing.T) {
		t.Parallel()
		fail := true
		e := setup(t, Config{}, func(o *Options) {
			o.Apply = func(context.Context, []planner.Installation) error {
				if fail {
					return errors.New("boom")
				}
				return nil
			}
		})
		if _, err := e.svc.installationsOnce(e.ctx); err == nil || !strings.Contains(err.Error(), "boom") {
			t.Fatalf("err %v", err)
		}
		fail = false
		if rep, err := e.svc.installationsOnce(e.ctx); err != nil || !rep.Applied {
			t.Fatalf("retry: %+v %v", rep, err)
		}
	})
}

func TestListInstallations(t *testing.T) {
	t.Parallel()
	e := setup(t, Config{})
	list, err := ListInstallations(e.ctx, e.app)
	if err != nil {
		t.Fatal(err)
	}
	if got := accounts(list); got != "acme(api,web)" {
		t.Fatalf("got %q", got)
	}
	if list[0].Repositories[0].Owner != "acme" || list[0].Repositories[0].ID == 0 {
		t.Fatalf("repositories %+v", list[0].Repositories)
	}
	// The planner accepts it as is.
	ts, _, err := planner.SelectTenants(list, planner.Selection{})
	if err != nil || len(ts.Repositories) != 2 {
		t.Fatalf("SelectTenants: %+v %v", ts, err)
	}
	// An installation removed between the two calls (its token mint answers 404) is left out
	// instead of failing the whole listing.
	gone, err := e.fake.AddInstallation("gone", "x")
	if err != nil {
		t.Fatal(err)
	}
	e.fake.InjectFault(githubfake.Fault{Method: http.MethodPost, Path: fmt.Sprintf("/app/installations/%d/access_tokens", gone.ID), Status: http.StatusNotFound})
	if list, err := ListInstallations(e.ctx, e.app); err != nil || accounts(list) != "acme(api,web)" {
		t.Fatalf("with an installation gone: %q %v", accounts(list), err)
	}
	// Other errors still fail it.
	e.fake.InjectFault(githubfake.ServerError(fmt.Sprintf("/app/installations/%d/access_tokens", gone.ID), 1, http.StatusBadGateway))
	if _, err := ListInstallations(e.ctx, e.app); err == nil {
		t.Fatal("a 502 on an installation's token mint did not fail the listing")
	}
}

func TestSpecs(t *testing.T) {
	t.Parallel()
	e := setup(t, Config{})
	plan, err := planner.Planner{Specs: e.svc.Specs()}.Plan([]planner.Installation{{ID: 1, Account: "acme", Repositories: []planner.Repository{{ID: 2, Name: "api"}}}})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range plan.Workers {
		names = append(names, u.Name)
	}
	if got := strings.Join(names, " "); got != "worker:installations worker:sweep:acme/api worker:redeliver" {
		t.Fatalf("workers %s", got)
	}
	off := false
	e2 := e.newService(Config{Redeliver: &off})
	for _, s := range e2.Specs() {
		if s.Resource == "redeliver" {
			t.Fatal("redeliver spec with sweep.redeliver: false")
		}
	}
}
