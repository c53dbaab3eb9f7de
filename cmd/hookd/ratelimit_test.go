package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/config"
	"github.com/hookd/hookd/processor"
)

// TestRateLimitPerInstallation: the fake exhausts installation A's rate limit. A's events wait
// for the reset, without a dead letter and without spending requests, while installation B's
// events are handled at once. With two replicas the processor learns the exhaustion from the
// other replica through the shared budget, before its first call.
func TestRateLimitPerInstallation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		replicas int
	}{
		{"one replica", 1},
		{"two replicas share the budget", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			testRateLimit(t, tc.replicas)
		})
	}
}

func testRateLimit(t *testing.T, replicas int) {
	fake, a := newFake(t)
	b, err := fake.AddInstallation("other-org", "other-org/widgets")
	if err != nil {
		t.Fatal(err)
	}
	repoOf := map[int64][2]string{a.ID: {"octo-org", "hello-world"}, b.ID: {"other-org", "widgets"}}

	type success struct {
		delivery string
		at       time.Time
	}
	var (
		mu       sync.Mutex
		handled  = map[int64][]success{}
		attempts = map[int64]int{}
		notify   = make(chan struct{}, 1)
	)
	handlers := func(m *processor.Mux) error {
		return m.HandleFunc("test-ratelimit", processor.On("issues"), func(ctx context.Context, ev *processor.Event) error {
			gh, err := ev.GitHub()
			if err != nil {
				return err
			}
			repo := repoOf[ev.Meta.InstallationID]
			_, _, err = gh.Repositories.Get(ctx, repo[0], repo[1])
			mu.Lock()
			attempts[ev.Meta.InstallationID]++
			if err == nil {
				handled[ev.Meta.InstallationID] = append(handled[ev.Meta.InstallationID], success{ev.Meta.Delivery, time.Now()})
			}
			mu.Unlock()
			select {
			case notify <- struct{}{}:
			default:
			}
			return err
		})
	}
	// No sweeps: the handler (and the test) are the only callers of A's API, so that GitHub's
	// refusals are countable.
	cfg := testConfig(t, t.TempDir(), fake)
	cfg.Roles = []string{config.RoleIngest, config.RoleProcess}
	if replicas == 2 {
		cfg.Roles = []string{config.RoleIngest} // the ingest replica; the other one processes
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ta := startTestAppWith(t, cfg, fake, handlers)
	proc := ta
	if replicas == 2 {
		cfg2 := testConfig(t, t.TempDir(), fake)
		cfg2.NATS.URL = ta.app.natsURL()
		cfg2.Roles = []string{config.RoleProcess}
		if err := cfg2.Validate(); err != nil {
			t.Fatal(err)
		}
		proc = startTestAppWith(t, cfg2, fake, handlers)
	}

	// GitHub's X-RateLimit-Reset is in whole seconds. B's events must be stored and handled
	// before it: leave room for a loaded machine.
	reset := time.Now().Add(6 * time.Second).Truncate(time.Second)
	fake.SetRateLimit(a.ID, 0, reset)
	if replicas == 2 {
		// The ingest replica meets the exhausted budget (as its sweeps would)...
		gh, err := ta.app.gh.Installation(a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := gh.Repositories.Get(context.Background(), "octo-org", "hello-world"); err == nil {
			t.Fatal("A's budget is not exhausted")
		}
		// ...and the processing replica learns it through the KV bucket.
		learned := time.After(10 * time.Second)
		for {
			if _, exhausted := proc.app.gh.Budget().Check(a.ID); exhausted {
				break
			}
			select {
			case <-learned:
				t.Fatal("the processing replica did not learn A's exhausted budget")
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	const perInstallation = 2
	secret := fake.App().WebhookSecret
	for i := range perInstallation {
		for _, inst := range []int64{a.ID, b.ID} {
			d := fmt.Sprintf("rl-%d-%d", inst, i)
			if got := post(t, ta.url+"/webhook", secret, "issues", d, withInstallation(t, "issues.opened", inst)); got != http.StatusAccepted {
				t.Fatalf("%s: status %d, want 202", d, got)
			}
		}
	}

	deadline := time.After(20 * time.Second)
	for {
		mu.Lock()
		n := len(handled[a.ID]) + len(handled[b.ID])
		mu.Unlock()
		if n >= 2*perInstallation {
			break
		}
		select {
		case <-notify:
		case <-deadline:
			t.Fatalf("timed out: handled %d of %d events", n, 2*perInstallation)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	if len(handled[a.ID]) != perInstallation || len(handled[b.ID]) != perInstallation {
		t.Fatalf("handled %d events of A and %d of B, want %d each", len(handled[a.ID]), len(handled[b.ID]), perInstallation)
	}
	for _, sb := range handled[b.ID] {
		if !sb.at.Before(reset) {
			t.Errorf("B's %s was handled at %s, after A's reset %s: B waited for A", sb.delivery, sb.at.Format(time.StampMilli), reset.Format(time.StampMilli))
		}
		for _, sa := range handled[a.ID] {
			if !sb.at.Before(sa.at) {
				t.Errorf("B's %s was handled after A's %s", sb.delivery, sa.delivery)
			}
		}
	}
	for _, sa := range handled[a.ID] {
		if sa.at.Before(reset) {
			t.Errorf("A's %s was handled at %s, before its reset %s", sa.delivery, sa.at.Format(time.StampMilli), reset.Format(time.StampMilli))
		}
	}
	if attempts[a.ID] <= perInstallation {
		t.Errorf("A's events were tried %d times: the exhausted budget did not make them wait", attempts[a.ID])
	}
	if attempts[b.ID] != perInstallation {
		t.Errorf("B's events were tried %d times, want %d", attempts[b.ID], perInstallation)
	}
	// GitHub refused one request of A; every other attempt before the reset was held in hookd.
	if st := fake.Stats(a.ID); st.RateLimited != 1 {
		t.Errorf("A's requests refused by GitHub: %d, want 1 (stats %+v)", st.RateLimited, st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	dlq, err := proc.app.js.Stream(ctx, broker.StreamDLQ)
	if err != nil {
		t.Fatal(err)
	}
	info, err := dlq.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 0 {
		t.Fatalf("%d dead letters, want none", info.State.Msgs)
	}
}
