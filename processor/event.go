package processor

import (
	"context"
	"sync"

	"github.com/google/go-github/v60/github"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/event"
)

// Clients hands out installation-scoped GitHub clients. internal/ghapp.App implements it; tests
// use a struct over a fake GitHub.
type Clients interface {
	Installation(id int64) (*github.Client, error)
}

// Event is one stored event as one handler sees it. The payload is decoded once per event and
// shared by its handlers: treat what Parsed returns as read-only.
type Event struct {
	// Meta is what ingest stored with the delivery: event name, action, delivery id, sender, ...
	Meta event.Meta
	// Tenant is the repository the event belongs to, or its installation (RepositoryID 0) for
	// installation-level events.
	Tenant event.Tenant
	// Payload is the body exactly as GitHub sent it (raw JSON).
	Payload []byte
	// Handler is the name the handler was registered under.
	Handler string
	// Attempt is 1 the first time this event is handled, and counts the failed attempts before.
	Attempt int
	// Seq is the event's sequence in the events stream.
	Seq uint64
	// Ledger is the effect ledger of this event and handler: see Ledger.Do.
	Ledger *Ledger
	// Log carries the fields tenant, delivery, event and handler.
	Log zerolog.Logger

	shared *shared
}

// shared is what the handlers of one event share: the decoded payload, the GitHub client and the
// staleness verdict, each computed at most once.
type shared struct {
	clients Clients
	states  *stateStore
	ctx     context.Context

	parseOnce sync.Once
	parsed    any
	parseErr  error

	ghOnce sync.Once
	gh     *github.Client
	ghErr  error

	staleOnce sync.Once
	item      itemRef
	stale     bool

	memoMu sync.Mutex
	memo   map[any]*memoEntry
}

type memoEntry struct {
	once sync.Once
	val  any
	err  error
}

// Shared returns the value build makes for key, building it at most once per event: the
// handlers of one event share it (rules share the payload decoded into a map this way). key
// should be a value of an unexported type of the caller's package, like a context key. The
// value is shared: treat it as read-only.
func (e *Event) Shared(key any, build func() (any, error)) (any, error) {
	s := e.shared
	s.memoMu.Lock()
	if s.memo == nil {
		s.memo = map[any]*memoEntry{}
	}
	m := s.memo[key]
	if m == nil {
		m = &memoEntry{}
		s.memo[key] = m
	}
	s.memoMu.Unlock()
	m.once.Do(func() { m.val, m.err = build() })
	return m.val, m.err
}

// Parsed returns the payload decoded into its go-github type (*github.IssuesEvent for "issues",
// and so on) by github.ParseWebHook. It decodes once per event. An error (unknown event type or
// malformed JSON) is permanent: returning it dead-letters the event.
func (e *Event) Parsed() (any, error) {
	s := e.shared
	s.parseOnce.Do(func() {
		s.parsed, s.parseErr = github.ParseWebHook(e.Meta.Event, e.Payload)
		if s.parseErr != nil {
			s.parseErr = Permanent(s.parseErr)
		}
	})
	return s.parsed, s.parseErr
}

// GitHub returns a GitHub client scoped to the event's installation. It fails with
// ErrNoInstallation for events outside any installation.
func (e *Event) GitHub() (*github.Client, error) {
	s := e.shared
	s.ghOnce.Do(func() {
		switch {
		case s.clients == nil:
			s.ghErr = ErrNoClients
		case e.Meta.InstallationID == 0:
			s.ghErr = ErrNoInstallation
		default:
			s.gh, s.ghErr = s.clients.Installation(e.Meta.InstallationID)
		}
	})
	return s.gh, s.ghErr
}

// Stale reports whether a newer state of the event's issue or pull request was already handled
// (its updated_at is older than the one recorded after the last successful handling; see
// docs/ARCHITECTURE.md "Staleness"). GitHub does not deliver webhooks in order, and replays and
// reconcile events arrive late: a handler that sets state (labels, status comments) should skip
// stale events. Events without an issue or pull request are never stale, nor are comments and
// reviews: they add to the item rather than set its state, so a late one still counts. If the state cannot be
// read, Stale reports false and logs why.
func (e *Event) Stale() bool {
	s := e.shared
	s.staleOnce.Do(func() {
		if additiveEvents[e.Meta.Event] || s.states == nil || s.item.Number == 0 || s.item.UpdatedAt.IsZero() {
			return
		}
		cur, ok, err := s.states.get(s.ctx, e.Tenant, s.item.Number)
		if err != nil {
			e.Log.Warn().Err(err).Int("number", s.item.Number).Msg("staleness state unreadable; treating event as fresh")
			return
		}
		s.stale = ok && cur.UpdatedAt.After(s.item.UpdatedAt)
	})
	return s.stale
}
