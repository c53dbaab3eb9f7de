package main

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker/brokertest"
)

// TestServeCluster: two hookd replicas join a 3-node NATS cluster (HOOKD_NATS_URL, 3 replicas);
// deliveries posted to either are handled once, by one of them, and both take a share.
func TestServeCluster(t *testing.T) {
	t.Parallel()
	cluster := brokertest.StartCluster(t, 3)
	fake, inst := newFake(t)
	recs := []*recorder{newRecorder(), newRecorder()}
	var apps []*testApp
	for _, rec := range recs {
		cfg := testConfig(t, t.TempDir(), fake)
		cfg.NATS.URL, cfg.NATS.Replicas = cluster.URL, 3
		cfg.Defaults()
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		apps = append(apps, startTestAppWith(t, cfg, fake, rec.register))
	}
	// The replicas share the partitions once each sees the other: wait for the balancer to give
	// each its half, rather than for a fixed time a loaded machine may need more of.
	deadline := time.Now().Add(30 * time.Second)
	for {
		owned := []float64{partitionsOwned(t, apps[0]), partitionsOwned(t, apps[1])}
		if owned[0] > 0 && owned[1] > 0 && owned[0]+owned[1] == float64(apps[0].app.cfg.NATS.Partitions) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("partitions owned by the replicas after 30s: %v", owned)
		}
		time.Sleep(50 * time.Millisecond)
	}

	secret := fake.App().WebhookSecret
	const n = 60
	body := func(i int) []byte {
		// Spread the events over repositories, so that they land in every partition.
		b := withInstallation(t, "issues.opened", inst.ID)
		return []byte(string(b[:len(b)-1]) + fmt.Sprintf(`,"repository":{"id":%d,"full_name":"octo-org/r%d","owner":{"login":"octo-org"}}}`, 1000+i, i))
	}
	for i := range n {
		b := body(i)
		if got := post(t, apps[i%2].url+"/webhook", secret, "issues", fmt.Sprintf("cl-%d", i), b); got != http.StatusAccepted {
			t.Fatalf("delivery %d: %d", i, got)
		}
	}
	// A redelivery to the other replica is a duplicate.
	if got := post(t, apps[1].url+"/webhook", secret, "issues", "cl-0", body(0)); got != http.StatusOK {
		t.Fatalf("duplicate via the other replica: %d, want 200", got)
	}
	deadline = time.Now().Add(60 * time.Second)
	for {
		count := map[string]int{}
		for _, r := range recs {
			for _, ev := range r.events() {
				count[ev.Meta.Delivery]++
			}
		}
		if len(count) >= n {
			time.Sleep(500 * time.Millisecond)
			count = map[string]int{}
			per := make([]int, len(recs))
			for i, r := range recs {
				for _, ev := range r.events() {
					count[ev.Meta.Delivery]++
					per[i]++
				}
			}
			for d, c := range count {
				if c != 1 {
					t.Errorf("%s handled %d times", d, c)
				}
			}
			if per[0] == 0 || per[1] == 0 {
				t.Errorf("one replica did all the work: %v", per)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d deliveries handled after 60s", len(count), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// partitionsOwned reads hookd_processor_partitions_owned from the app's registry.
func partitionsOwned(t *testing.T, ta *testApp) float64 {
	t.Helper()
	mfs, err := ta.app.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "hookd_processor_partitions_owned" && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return 0
}
