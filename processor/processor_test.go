package processor_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/processor"
)

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	rec := newRecorder()
	var mux processor.Mux
	must(t, mux.HandleFunc("record", processor.On("issues.opened", "issues.labeled"), func(ctx context.Context, ev *processor.Event) error {
		rec.add(call{handler: ev.Handler, delivery: ev.Meta.Delivery, tenant: ev.Tenant, seq: ev.Seq, attempt: ev.Attempt, at: time.Now()})
		return nil
	}))
	p := newProcessor(t, env, fastConfig(), &mux, nil)
	started(t, p)

	r := repo{inst: 7, id: 42, name: "acme/api"}
	publish(t, env.JS, "issues", "d-open", body(t, "issues.opened", r, nil))
	publish(t, env.JS, "issues", "d-assigned", body(t, "issues.assigned", r, nil)) // not selected
	publish(t, env.JS, "issues", "d-labeled", body(t, "issues.labeled", r, nil))
	got := rec.wait(t, 2, 10*time.Second)
	if got[0].delivery != "d-open" || got[1].delivery != "d-labeled" {
		t.Fatalf("calls %+v, want d-open then d-labeled", got)
	}
	if got[0].tenant.InstallationID != 7 || got[0].tenant.RepositoryID != 42 || got[0].tenant.FullName() != "acme/api" || got[0].attempt != 1 {
		t.Fatalf("tenant/attempt %+v", got[0])
	}
	// a GitHub redelivery with the same delivery id is stored once and handled once
	publish(t, env.JS, "issues", "d-open", body(t, "issues.opened", r, nil))
	// an event sent by the app's own bot is not dispatched
	publish(t, env.JS, "issues", "d-bot", body(t, "issues.opened", r, func(m map[string]any) {
		m["sender"] = map[string]any{"login": "hookd-test[bot]", "type": "Bot"}
	}))
	publish(t, env.JS, "issues", "d-last", body(t, "issues.opened", r, nil))
	got = rec.wait(t, 1, 10*time.Second)
	if got[0].delivery != "d-last" {
		t.Fatalf("after duplicate and bot event got %+v, want d-last", got[0])
	}
	rec.quiet(t, 300*time.Millisecond)
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOrdering(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	rec := newRecorder()
	var mux processor.Mux
	must(t, mux.HandleFunc("order", processor.On("issue_comment"), func(ctx context.Context, ev *processor.Event) error {
		start := time.Now()
		time.Sleep(2 * time.Millisecond) // long enough for tenants to overlap
		rec.add(call{delivery: ev.Meta.Delivery, tenant: ev.Tenant, seq: ev.Seq, at: start, end: time.Now()})
		return nil
	}))
	cfg := fastConfig()
	cfg.Concurrency = 8
	p := newProcessor(t, env, cfg, &mux, nil)

	const repos, perRepo = 12, 25
	var rs []repo
	for i := range repos {
		rs = append(rs, repo{inst: 1, id: int64(100 + i), name: fmt.Sprintf("acme/r%d", i)})
	}
	// Interleaved, and stored before the processor starts so that it reads ahead.
	for j := range perRepo {
		for i, r := range rs {
			if i%3 == 0 && j%2 == 1 {
				continue // uneven tenants
			}
			publish(t, env.JS, "issue_comment", fmt.Sprintf("d-%d-%d", i, j), body(t, "issue_comment.created", r, nil))
		}
	}
	want := 0
	for j := range perRepo {
		for i := range repos {
			if !(i%3 == 0 && j%2 == 1) {
				want++
			}
		}
	}
	started(t, p)
	calls := rec.wait(t, want, 30*time.Second)
	rec.quiet(t, 200*time.Millisecond)

	last := map[int64]call{}
	seen := map[string]bool{}
	for _, c := range calls {
		if seen[c.delivery] {
			t.Fatalf("delivery %s handled twice", c.delivery)
		}
		seen[c.delivery] = true
		if prev, ok := last[c.tenant.RepositoryID]; ok {
			if c.seq <= prev.seq {
				t.Fatalf("tenant %s: seq %d handled after %d", c.tenant, c.seq, prev.seq)
			}
			if c.at.Before(prev.end) {
				t.Fatalf("tenant %s: two events overlapped", c.tenant)
			}
		}
		last[c.tenant.RepositoryID] = c
	}
	// Different repositories ran at the same time.
	overlap := false
	for i := 1; i < len(calls) && !overlap; i++ {
		for j := max(0, i-10); j < i; j++ {
			a, b := calls[j], calls[i]
			if a.tenant != b.tenant && b.at.Before(a.end) && a.at.Before(b.end) {
				overlap = true
				break
			}
		}
	}
	if !overlap {
		t.Fatal("no two repositories were handled concurrently")
	}
}
