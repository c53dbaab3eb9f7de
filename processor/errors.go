package processor

import (
	"errors"
	"time"

	"github.com/hookd/hookd/planner"
)

// Handler-facing error constructors. A handler returns one of these (or any error) and the
// processor maps it to exactly one JetStream ack verb (see settle): nil acknowledges the event,
// a transient error re-delivers it after a backoff, a permanent error dead-letters it at once.
// Unmarked errors are classified by planner.Classify (go-github rate limits and HTTP statuses,
// network errors); what stays unclassified is retried on the long backoff and dead-lettered after
// Retry.MaxAttempts attempts.

// Permanent marks err as not worth retrying: the event goes to the dead letters at once.
// Permanent(nil) is nil.
func Permanent(err error) error { return planner.Permanent(err) }

// Transient marks err as worth retrying with the policy's exponential backoff.
// Transient(nil) is nil.
func Transient(err error) error { return planner.Transient(err) }

// RetryAfter marks err as transient with a wait: the event is re-delivered no sooner than d
// (longer when the backoff is longer). RetryAfter(nil, d) is nil.
func RetryAfter(err error, d time.Duration) error { return planner.RetryAfter(err, d) }

// ErrStale is returned by the built-in effects (CreateComment, AddLabels, RemoveLabel) when the
// event is older than the state hookd already applied for its issue or pull request (see
// Event.Stale). A handler may return it as is: the processor counts the event as handled
// (outcome "stale") and acknowledges it.
var ErrStale = errors.New("event is stale: a newer state of this issue or pull request was already handled")

// ErrNoInstallation is returned by Event.GitHub for an event that belongs to no installation
// (ping, for example). It is permanent: retrying cannot help.
var ErrNoInstallation = planner.Permanent(errors.New("event has no installation: no installation-scoped GitHub client"))

// ErrNoClients is returned by Event.GitHub when the processor was built without Deps.Clients.
var ErrNoClients = planner.Permanent(errors.New("processor has no GitHub clients (Deps.Clients is nil)"))
