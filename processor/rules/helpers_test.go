package rules

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/payloads"
)

// input builds the Input of a real example payload ("issues.opened"), after applying edits to
// the decoded JSON (nil for none).
func input(t testing.TB, name string, edit func(p map[string]any)) Input {
	t.Helper()
	body := payloads.Get(name)
	if edit != nil {
		var p map[string]any
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		edit(p)
		var err error
		if body, err = json.Marshal(p); err != nil {
			t.Fatal(err)
		}
	}
	m := event.Meta{Event: payloads.Event(name), Delivery: "d-" + name}
	if err := event.ParsePayload(&m, body); err != nil {
		t.Fatal(err)
	}
	if m.InstallationID == 0 {
		m.InstallationID = 42
	}
	in, err := NewInput(m, body)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func setPath(p map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		p = p[k].(map[string]any)
	}
	p[keys[len(keys)-1]] = v
}

func load(t testing.TB, yml string, opts Options) *Engine {
	t.Helper()
	cfg, err := Parse([]byte(yml))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	e, err := Load(cfg, opts)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return e
}

func names(rs []*Rule) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, r.Name())
	}
	return out
}

// script writes an executable sh script and returns its path.
func script(t testing.TB, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.sh")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// fakeGitHub is an in-memory issue tracker.
type fakeGitHub struct {
	mu       sync.Mutex
	comments []Comment
	labels   map[string]bool
	nextID   int64
	creates  int
	edits    int
	lists    int
	// failAfterCreate makes CreateComment post and then report an error (a crash or lost
	// response after the effect).
	failAfterCreate bool
	login           string
}

func newFakeGitHub() *fakeGitHub {
	return &fakeGitHub{labels: map[string]bool{}, nextID: 100, login: "hookd[bot]"}
}

func (f *fakeGitHub) ListComments(_ context.Context, owner, repo string, number int) ([]Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	return append([]Comment(nil), f.comments...), nil
}

func (f *fakeGitHub) CreateComment(_ context.Context, owner, repo string, number int, body string) (Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	c := Comment{ID: f.nextID, Body: body, User: f.login}
	f.comments = append(f.comments, c)
	f.creates++
	if f.failAfterCreate {
		f.failAfterCreate = false
		return Comment{}, errors.New("connection reset after the comment was created")
	}
	return c, nil
}

func (f *fakeGitHub) EditComment(_ context.Context, owner, repo string, id int64, body string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.comments {
		if f.comments[i].ID == id {
			f.comments[i].Body = body
			f.edits++
			return nil
		}
	}
	return fmt.Errorf("no comment %d", id)
}

func (f *fakeGitHub) AddLabels(_ context.Context, owner, repo string, number int, labels []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range labels {
		f.labels[l] = true
	}
	return nil
}

func (f *fakeGitHub) RemoveLabel(_ context.Context, owner, repo string, number int, label string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.labels, label)
	return nil
}

func (f *fakeGitHub) snapshot() (comments []Comment, creates, edits int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Comment(nil), f.comments...), f.creates, f.edits
}

// memLedger is an in-memory Ledger; failPut makes the next Put fail (a crash before recording).
type memLedger struct {
	mu      sync.Mutex
	m       map[string][]byte
	failPut bool
}

func newLedger() *memLedger { return &memLedger{m: map[string][]byte{}} }

func (l *memLedger) Get(_ context.Context, key string) ([]byte, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	v, ok := l.m[key]
	return v, ok, nil
}

func (l *memLedger) Put(_ context.Context, key string, val []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failPut {
		l.failPut = false
		return errors.New("ledger unavailable")
	}
	l.m[key] = val
	return nil
}

// fakeTokens mints numbered tokens valid for ttl.
type fakeTokens struct {
	mu    sync.Mutex
	n     int
	ttl   time.Duration
	calls []struct {
		inst  int64
		repos []int64
		perms map[string]string
	}
}

func (f *fakeTokens) Token(_ context.Context, inst int64, repos []int64, perms map[string]string) (string, time.Time, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	f.calls = append(f.calls, struct {
		inst  int64
		repos []int64
		perms map[string]string
	}{inst, repos, perms})
	return fmt.Sprintf("ghs_faketoken%030d", f.n), time.Now().Add(f.ttl), nil
}
