package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/config"
	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/internal/preflight"
	"github.com/hookd/hookd/processor"
	"github.com/hookd/hookd/processor/rules"
	"github.com/hookd/hookd/sweep"
)

// handlerDeps are what the built-in handlers may use.
type handlerDeps struct {
	log   zerolog.Logger
	sweep *sweep.Service
}

// registerHandlers is hookd's list of Go handlers, read top to bottom. To add one, write a
// processor.Handler (see processor/example_handler_test.go) and add a line here.
func registerHandlers(mux *processor.Mux, d handlerDeps) error {
	return errors.Join(
		mux.Handle("installations", processor.On("installation", "installation_repositories"), d.sweep.InstallationsHandler(), processor.AllowBotEvents()),
	)
}

// needsOf is what the app must be subscribed to and allowed to do for the configured rules
// (app.plan adds the events the Go handlers select by name): preflight:app checks it, and the
// sweeps redeliver and reconcile only these events.
func needsOf(cfg *config.Config) preflight.Needs {
	n := preflight.Needs{Permissions: map[string]string{"metadata": "read"}}
	grant := func(perm, level string) {
		if n.Permissions[perm] != "write" {
			n.Permissions[perm] = level
		}
	}
	for _, r := range cfg.Rules {
		for _, on := range r.On {
			name, _, _ := strings.Cut(on, ".")
			if !slices.Contains(n.Events, name) {
				n.Events = append(n.Events, name)
			}
			if r.Comment != nil || r.Labels != nil {
				// Comments and labels on pull requests go through the issues API too, but GitHub
				// asks for pull_requests write on pull requests.
				grant("issues", "write")
				if strings.HasPrefix(name, "pull_request") {
					grant("pull_requests", "write")
				}
			}
		}
		if r.Run != nil && r.Run.Token {
			perms := r.Run.Permissions
			if len(perms) == 0 { // not relying on rules.Load having filled in the default
				perms = rules.DefaultPermissions()
			}
			for perm, level := range perms {
				grant(perm, level)
			}
		}
	}
	slices.Sort(n.Events)
	return n
}

// tokenSource gives rules' commands installation tokens narrowed to one repository.
type tokenSource struct{ gh *ghapp.App }

func (t tokenSource) Token(ctx context.Context, installationID int64, repoIDs []int64, perms map[string]string) (string, time.Time, error) {
	var p *github.InstallationPermissions
	if len(perms) > 0 {
		b, err := json.Marshal(perms)
		if err != nil {
			return "", time.Time{}, err
		}
		p = new(github.InstallationPermissions)
		if err := json.Unmarshal(b, p); err != nil {
			return "", time.Time{}, fmt.Errorf("run.permissions %v: %w", perms, err)
		}
	}
	tok, err := t.gh.Token(ctx, installationID, repoIDs, p)
	if err != nil {
		return "", time.Time{}, err
	}
	return tok.GetToken(), tok.GetExpiresAt().Time, nil
}

// registerRules makes every configured rule a processor handler of its own.
func registerRules(ctx context.Context, mux *processor.Mux, a *app) error {
	if len(a.cfg.Rules) == 0 {
		return nil
	}
	log := a.log.With().Str("component", "rules").Logger()
	e, err := rules.Load(a.cfg.Rules, rules.Options{BotLogin: a.cfg.Processor.BotLogin, BaseDir: a.cfg.RulesDir, Log: log})
	if err != nil {
		return err
	}
	d := rules.HandlerDeps{Tokens: tokenSource{a.gh}, Log: log}
	for _, r := range a.cfg.Rules {
		if r.Concurrency > 0 {
			sem, err := rules.NewKVSemaphore(ctx, a.js, rules.SemaphoreConfig{Replicas: a.cfg.NATS.Replicas}, log)
			if err != nil {
				return fmt.Errorf("rules concurrency: %w", err)
			}
			d.Semaphore = sem
			break
		}
	}
	return rules.Register(mux, e, d)
}
