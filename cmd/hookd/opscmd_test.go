package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"

	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/payloads"
	"github.com/hookd/hookd/processor"
)

// runCLI runs a hookd subcommand in-process and returns its standard output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	return out.String(), err
}

// TestDLQCommands: a permanent failure is dead-lettered; `hookd dlq list/show` show it; after the
// cause is fixed, `hookd dlq replay` brings it back with its delivery id and it succeeds.
func TestDLQCommands(t *testing.T) {
	t.Parallel()
	fake, inst := newFake(t)
	var broken atomic.Bool
	broken.Store(true)
	handled := make(chan string, 16)
	rec := newRecorder()
	cfg := testConfig(t, t.TempDir(), fake)
	ta := startTestAppWith(t, cfg, fake, func(m *processor.Mux) error {
		if err := rec.register(m); err != nil {
			return err
		}
		return m.HandleFunc("flaky", processor.On("issues.opened"), func(ctx context.Context, ev *processor.Event) error {
			if broken.Load() {
				return processor.Permanent(errors.New("label service says no"))
			}
			handled <- ev.Meta.Delivery
			return nil
		})
	})
	if got := post(t, ta.url+"/webhook", fake.App().WebhookSecret, "issues", "dlq-1", withInstallation(t, "issues.opened", inst.ID)); got != http.StatusAccepted {
		t.Fatalf("post: %d", got)
	}
	cfgFile := filepath.Join(t.TempDir(), "cli.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("nats:\n  url: %s\n  partitions: %d\n", ta.app.nc.ConnectedUrl(), cfg.NATS.Partitions)), 0o600); err != nil {
		t.Fatal(err)
	}

	var list []deadLetterJSON
	deadline := time.Now().Add(20 * time.Second)
	for len(list) == 0 {
		out, err := runCLI(t, "dlq", "list", "--json", "--config", cfgFile)
		if err != nil {
			t.Fatalf("dlq list: %v\n%s", err, out)
		}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("dlq list --json: %v\n%s", err, out)
		}
		if time.Now().After(deadline) {
			t.Fatal("no dead letter after 20s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	d := list[0]
	if d.Delivery != "dlq-1" || d.Class != "permanent" || !strings.Contains(d.Error, "label service says no") || len(d.Handlers) != 1 || d.Handlers[0] != "flaky" {
		t.Fatalf("dead letter: %+v", d)
	}
	out, err := runCLI(t, "dlq", "show", fmt.Sprint(d.ID), "--config", cfgFile)
	if err != nil || !strings.Contains(out, `"payload"`) || !strings.Contains(out, "Hookd-Delivery") {
		t.Fatalf("dlq show: %v\n%s", err, out)
	}
	out, err = runCLI(t, "status", "--config", cfgFile)
	if err != nil || !strings.Contains(out, "dead letters: 1") || !strings.Contains(out, "REPLICAS") || !strings.Contains(out, "[0 1 2 3]") {
		t.Fatalf("status: %v\n%s", err, out)
	}

	broken.Store(false)
	// The same ID twice (a pasted list) replays it once and succeeds.
	if out, err := runCLI(t, "dlq", "replay", fmt.Sprint(d.ID), fmt.Sprint(d.ID), "--config", cfgFile); err != nil || !strings.Contains(out, "1 dead letter(s) replayed") {
		t.Fatalf("dlq replay: %v\n%s", err, out)
	}
	select {
	case got := <-handled:
		if got != "dlq-1" {
			t.Fatalf("replayed event has delivery %q, want dlq-1", got)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("replayed event not handled within 20s")
	}
	if out, err := runCLI(t, "dlq", "purge", "--config", cfgFile); err == nil {
		t.Fatalf("purge without --yes must refuse:\n%s", out)
	}
}

// TestRulesTestEventFlag: `rules test` takes the event name as GitHub sends it; an
// "event.action" pair, which would silently match no rule, is refused with the right flags.
func TestRulesTestEventFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "hookd.yaml")
	if err := os.WriteFile(cfgFile, []byte("rules:\n- name: greet\n  on: [issues.opened]\n  comment: {body: hi}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	payload := filepath.Join(dir, "issue.json")
	if err := os.WriteFile(payload, payloads.Get("issues.opened"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "rules", "test", "--config", cfgFile, "--event", "issues", "--payload", payload)
	if err != nil || !strings.Contains(out, "1 of 1 rule(s) match") {
		t.Fatalf("--event issues: %v\n%s", err, out)
	}
	_, err = runCLI(t, "rules", "test", "--config", cfgFile, "--event", "issues.opened", "--payload", payload)
	if err == nil || !strings.Contains(err.Error(), "--event issues") || !strings.Contains(err.Error(), "--action opened") {
		t.Fatalf("--event issues.opened: %v, want a refusal naming --event issues and --action opened", err)
	}
}

func TestTrunc(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghij", 5, "abcd…"},
		{"naïve résumé", 4, "na…"}, // "ï" is two bytes: not cut in half
	} {
		if got := trunc(tc.in, tc.n); got != tc.want || !utf8.ValidString(got) {
			t.Errorf("trunc(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestDLQDelete: `hookd dlq delete` removes the dead letters named, and only those; an ID that
// does not exist is an error.
func TestDLQDelete(t *testing.T) {
	t.Parallel()
	env := brokertest.New(t)
	var ids []uint64
	for i := range 3 {
		m := event.Meta{Event: "issues", Action: "opened", Delivery: fmt.Sprintf("del-%d", i), InstallationID: 1, RepositoryID: 2, SecretIndex: -1}
		ack, err := env.JS.PublishMsg(context.Background(), &nats.Msg{
			Subject: fmt.Sprintf("%s.0.%s.issues.%s", event.DLQPrefix, m.Tenant().Key(), m.Delivery), Header: m.Header(), Data: []byte(`{}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, ack.Sequence)
	}
	cfgFile := filepath.Join(t.TempDir(), "cli.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf("nats:\n  url: %s\n  partitions: %d\n", env.URL, env.Config.Partitions)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "dlq", "delete", fmt.Sprint(ids[0]), fmt.Sprint(ids[2]), fmt.Sprint(ids[0]), "--config", cfgFile)
	if err != nil || !strings.Contains(out, "2 dead letter(s) deleted") {
		t.Fatalf("dlq delete: %v\n%s", err, out)
	}
	left, err := processor.NewDLQ(env.JS).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0].ID != ids[1] {
		t.Fatalf("left after delete: %+v, want only %d", left, ids[1])
	}
	if _, err := runCLI(t, "dlq", "delete", fmt.Sprint(ids[0]), "--config", cfgFile); err == nil || !errors.Is(err, processor.ErrNotFound) {
		t.Fatalf("deleting a deleted dead letter: %v, want not found", err)
	}
	if _, err := runCLI(t, "dlq", "delete", "--config", cfgFile); err == nil {
		t.Fatal("dlq delete without IDs must refuse")
	}
}
