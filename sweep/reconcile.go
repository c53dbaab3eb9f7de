package sweep

import (
	"encoding/json"
	"fmt"
	"time"
)

// ActionReconcile is the action of every reconcile event.
const ActionReconcile = "reconcile"

// ReconcileDeliveryID is the delivery id of the reconcile event for issue or pull request
// number of repository repoID at updatedAt: "reconcile-<repoID>-<number>-<updatedAtUnix>". It
// is deterministic, so two passes or two replicas finding the same drift store one event.
func ReconcileDeliveryID(repoID int64, number int, updatedAt time.Time) string {
	return fmt.Sprintf("reconcile-%d-%d-%d", repoID, number, updatedAt.Unix())
}

// ReconcilePayload is the body of a reconcile event, shaped like the webhook payload of the
// same event name (see docs/ARCHITECTURE.md ("Reconcile events")): "issues" events carry Issue (the issue as the REST API
// listed it), "pull_request" events carry Number and PullRequest (the pull request as GET
// /repos/{owner}/{repo}/pulls/{number} returned it, head sha included).
type ReconcilePayload struct {
	Action       string          `json:"action"`
	Number       int             `json:"number,omitempty"`
	Issue        json.RawMessage `json:"issue,omitempty"`
	PullRequest  json.RawMessage `json:"pull_request,omitempty"`
	Repository   RepositoryRef   `json:"repository"`
	Installation InstallationRef `json:"installation"`
	Sender       Sender          `json:"sender"`
}

// RepositoryRef is the repository of a reconcile event (a subset of the webhook's).
type RepositoryRef struct {
	ID       int64  `json:"id"`
	Name     string `json:"name"`
	FullName string `json:"full_name"`
	Owner    Login  `json:"owner"`
}

// Login is an account reference.
type Login struct {
	Login string `json:"login"`
}

// InstallationRef is the installation of a reconcile event.
type InstallationRef struct {
	ID int64 `json:"id"`
}

// Sender is the sender of a reconcile event: the app's bot.
type Sender struct {
	Login string `json:"login"`
	Type  string `json:"type"`
}
