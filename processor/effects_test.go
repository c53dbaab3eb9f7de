package processor_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/githubfake"
	"github.com/hookd/hookd/processor"
)

// fakeClients implements processor.Clients over githubfake with real installation tokens.
type fakeClients struct{ fake *githubfake.Fake }

func (c fakeClients) Installation(id int64) (*github.Client, error) {
	app := c.fake.App()
	tr, err := ghinstallation.New(http.DefaultTransport, app.ID, id, app.PrivateKeyPEM)
	if err != nil {
		return nil, err
	}
	tr.BaseURL = strings.TrimSuffix(c.fake.URL(), "/")
	gh := github.NewClient(&http.Client{Transport: tr})
	u, err := url.Parse(strings.TrimSuffix(c.fake.URL(), "/") + "/")
	if err != nil {
		return nil, err
	}
	gh.BaseURL = u
	return gh, nil
}

func TestBuiltinEffects(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	fake, err := githubfake.New(githubfake.Options{})
	must(t, err)
	fake.Start()
	t.Cleanup(fake.Close)
	inst, err := fake.AddInstallation("acme", "widgets")
	must(t, err)
	iss, err := fake.OpenIssue("acme/widgets", "alice", "It broke", "steps")
	must(t, err)
	r := repo{inst: inst.ID, id: inst.Repos[0].ID, name: "acme/widgets"}

	effectsKV, err := env.JS.KeyValue(context.Background(), broker.BucketEffects)
	must(t, err)
	var attempts atomic.Int32
	done := make(chan error, 10)
	var mux processor.Mux
	must(t, mux.HandleFunc("triage", processor.On("issues.opened"), func(ctx context.Context, ev *processor.Event) error {
		n := attempts.Add(1)
		if _, err := processor.CreateComment(ctx, ev, iss.Number, "welcome", "Thanks for the report!"); err != nil {
			done <- err
			return err
		}
		if err := processor.AddLabels(ctx, ev, iss.Number, "triage", "bug", "kind/crash"); err != nil {
			done <- err
			return err
		}
		if err := processor.RemoveLabel(ctx, ev, iss.Number, "not-there"); err != nil {
			done <- err
			return err
		}
		// A label with a slash is one path segment of the request, escaped.
		if err := processor.RemoveLabel(ctx, ev, iss.Number, "kind/crash"); err != nil {
			done <- err
			return err
		}
		if n == 1 {
			// Simulate a crash between the comment and its ledger record: the record goes back
			// to "claimed", and the attempt fails.
			key := "fx." + ev.Meta.Delivery + "." + ev.Handler + ".comment.welcome"
			claimed, _ := json.Marshal(map[string]any{"state": "claimed", "attempt": 1, "at": time.Now()})
			if _, err := effectsKV.Put(ctx, key, claimed); err != nil {
				done <- err
				return err
			}
			return processor.Transient(errors.New("crash after the comment"))
		}
		done <- nil
		return nil
	}))
	p := newProcessor(t, env, fastConfig(), &mux, fakeClients{fake})
	started(t, p)

	publish(t, env.JS, "issues", "d-triage", body(t, "issues.opened", r, func(m map[string]any) {
		m["issue"].(map[string]any)["number"] = iss.Number
	}))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("handler did not finish")
	}
	if n := attempts.Load(); n != 2 {
		t.Fatalf("%d attempts, want 2", n)
	}
	cs, err := fake.Comments("acme/widgets", iss.Number)
	must(t, err)
	if len(cs) != 1 || !strings.Contains(cs[0].Body, processor.CommentMarker("triage", "d-triage", "welcome")) {
		t.Fatalf("comments %+v, want exactly one with the marker", cs)
	}
	got, err := fake.Issue("acme/widgets", iss.Number)
	must(t, err)
	if fmt.Sprint(got.Labels) != "[bug triage]" {
		t.Fatalf("labels %v", got.Labels)
	}
}

func TestStaleness(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	r := repo{inst: 3, id: 33, name: "acme/stale"}
	type seen struct {
		delivery string
		stale    bool
		err      error
	}
	ch := make(chan seen, 10)
	var mux processor.Mux
	must(t, mux.HandleFunc("labeler", processor.On("issues", "issue_comment"), func(ctx context.Context, ev *processor.Event) error {
		err := processor.AddLabels(ctx, ev, 1, "x") // no GitHub client: only reached when fresh
		if errors.Is(err, processor.ErrNoClients) {
			err = nil
		}
		ch <- seen{ev.Meta.Delivery, ev.Stale(), err}
		return err
	}))
	p := newProcessor(t, env, fastConfig(), &mux, nil)
	started(t, p)
	at := func(ts string) func(map[string]any) {
		return func(m map[string]any) { m["issue"].(map[string]any)["updated_at"] = ts }
	}
	publish(t, env.JS, "issues", "newer", body(t, "issues.labeled", r, at("2024-05-01T10:00:00Z")))
	publish(t, env.JS, "issues", "older", body(t, "issues.opened", r, at("2024-05-01T09:00:00Z")))
	publish(t, env.JS, "issues", "same", body(t, "issues.assigned", r, at("2024-05-01T10:00:00Z")))
	// A comment delivered late (its issue's updated_at older than what was applied) still counts:
	// comments add to an issue, they do not set its state.
	publish(t, env.JS, "issue_comment", "late-comment", body(t, "issue_comment.created", r, func(m map[string]any) {
		iss := m["issue"].(map[string]any)
		iss["number"], iss["updated_at"] = 1, "2024-05-01T08:00:00Z"
	}))
	want := []seen{{"newer", false, nil}, {"older", true, processor.ErrStale}, {"same", false, nil}, {"late-comment", false, nil}}
	for _, w := range want {
		select {
		case s := <-ch:
			if s.delivery != w.delivery || s.stale != w.stale || !errors.Is(s.err, w.err) && s.err != w.err {
				t.Fatalf("got %+v, want %+v", s, w)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no call for %s", w.delivery)
		}
	}
	// the stale event was acknowledged, not retried
	select {
	case s := <-ch:
		t.Fatalf("unexpected call %+v", s)
	case <-time.After(300 * time.Millisecond):
	}
}
