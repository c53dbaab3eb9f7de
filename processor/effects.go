package processor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-github/v60/github"
)

// Built-in GitHub effects. Each goes through the event's Ledger, so that it happens once per
// event, handler and key even when the handler runs again, and skips stale events (returning
// ErrStale, which a handler may return as is).
//
// The ledger leaves one window: a crash after GitHub applied a request and before the ledger
// recorded it. The next attempt runs with EffectUncertain(ctx) true, and each effect closes the
// window its own way:
//
//   - CreateComment hides a marker in the comment body, <!-- hookd:handler=<h> delivery=<d>
//     key=<k> -->, and looks for it among the issue's comments before posting again;
//   - AddLabels and RemoveLabel are idempotent on GitHub (adding a present label and removing an
//     absent one change nothing).

// CommentMarker is the hidden marker CreateComment appends to a comment body.
func CommentMarker(handler, delivery, key string) string {
	return fmt.Sprintf("<!-- hookd:handler=%s delivery=%s key=%s -->", handler, delivery, key)
}

// CreateComment posts body as a comment on issue or pull request number of the event's
// repository, once for this event, handler and key, and returns the comment's id.
func CreateComment(ctx context.Context, ev *Event, number int, key, body string) (int64, error) {
	owner, repo, err := repoOf(ev)
	if err != nil {
		return 0, err
	}
	if ev.Stale() {
		return 0, ErrStale
	}
	marker := CommentMarker(ev.Handler, ev.Meta.Delivery, key)
	res, err := ev.Ledger.Do(ctx, "comment."+key, func(ctx context.Context) ([]byte, error) {
		gh, err := ev.GitHub()
		if err != nil {
			return nil, err
		}
		if EffectUncertain(ctx) {
			id, err := findComment(ctx, gh, owner, repo, number, marker)
			if err != nil {
				return nil, err
			}
			if id != 0 {
				ev.Log.Info().Int64("comment", id).Msg("comment was posted by an earlier attempt; not posting again")
				return []byte(strconv.FormatInt(id, 10)), nil
			}
		}
		c, _, err := gh.Issues.CreateComment(ctx, owner, repo, number, &github.IssueComment{Body: github.String(body + "\n\n" + marker)})
		if err != nil {
			return nil, fmt.Errorf("comment on %s/%s#%d: %w", owner, repo, number, err)
		}
		return []byte(strconv.FormatInt(c.GetID(), 10)), nil
	})
	if err != nil {
		return 0, err
	}
	id, _ := strconv.ParseInt(string(res), 10, 64)
	return id, nil
}

// findComment returns the id of the comment on number whose body holds marker, or 0.
func findComment(ctx context.Context, gh *github.Client, owner, repo string, number int, marker string) (int64, error) {
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for {
		cs, resp, err := gh.Issues.ListComments(ctx, owner, repo, number, opts)
		if err != nil {
			return 0, fmt.Errorf("look for an earlier attempt's comment on %s/%s#%d: %w", owner, repo, number, err)
		}
		for _, c := range cs {
			if strings.Contains(c.GetBody(), marker) {
				return c.GetID(), nil
			}
		}
		if resp.NextPage == 0 {
			return 0, nil
		}
		opts.Page = resp.NextPage
	}
}

// AddLabels adds labels to issue or pull request number of the event's repository, once for
// this event and handler (and idempotent on GitHub anyway).
func AddLabels(ctx context.Context, ev *Event, number int, labels ...string) error {
	owner, repo, err := repoOf(ev)
	if err != nil {
		return err
	}
	if len(labels) == 0 {
		return nil
	}
	if ev.Stale() {
		return ErrStale
	}
	sorted := slices.Sorted(slices.Values(labels))
	_, err = ev.Ledger.Do(ctx, "labels.add."+strconv.Itoa(number)+"."+strings.Join(sorted, ","), func(ctx context.Context) ([]byte, error) {
		gh, err := ev.GitHub()
		if err != nil {
			return nil, err
		}
		if _, _, err := gh.Issues.AddLabelsToIssue(ctx, owner, repo, number, labels); err != nil {
			return nil, fmt.Errorf("add labels %v to %s/%s#%d: %w", labels, owner, repo, number, err)
		}
		return nil, nil
	})
	return err
}

// RemoveLabel removes label from issue or pull request number of the event's repository, once
// for this event and handler. A label that is not there counts as removed.
func RemoveLabel(ctx context.Context, ev *Event, number int, label string) error {
	owner, repo, err := repoOf(ev)
	if err != nil {
		return err
	}
	if ev.Stale() {
		return ErrStale
	}
	_, err = ev.Ledger.Do(ctx, "labels.remove."+strconv.Itoa(number)+"."+label, func(ctx context.Context) ([]byte, error) {
		gh, err := ev.GitHub()
		if err != nil {
			return nil, err
		}
		// go-github puts the name into the path as it is: "kind/bug" would name another path.
		_, err = gh.Issues.RemoveLabelForIssue(ctx, owner, repo, number, url.PathEscape(label))
		var er *github.ErrorResponse
		if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound {
			return nil, nil // not there: nothing to remove
		}
		if err != nil {
			return nil, fmt.Errorf("remove label %q from %s/%s#%d: %w", label, owner, repo, number, err)
		}
		return nil, nil
	})
	return err
}

func repoOf(ev *Event) (owner, repo string, err error) {
	if !ev.Tenant.IsRepository() || ev.Tenant.Owner == "" || ev.Tenant.Name == "" {
		return "", "", Permanent(fmt.Errorf("event %s (%s) belongs to no repository", ev.Meta.Delivery, ev.Meta.Event))
	}
	return ev.Tenant.Owner, ev.Tenant.Name, nil
}
