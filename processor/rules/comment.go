package rules

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf16"

	"github.com/hookd/hookd/planner"
)

// MaxCommentLength is GitHub's limit on a comment body, in characters.
const MaxCommentLength = 65536

var unsafeMarker = regexp.MustCompile(`[^A-Za-z0-9._:-]`)

// UpsertMarker is the hidden marker of a rule's one comment in upsert mode.
func UpsertMarker(rule string) string { return "<!-- hookd:rule=" + rule + " -->" }

// AppendMarker is the hidden marker of the comment a rule posted for one delivery in append
// mode; a retry finds it and does not post again.
func AppendMarker(rule, delivery string) string {
	return "<!-- hookd:rule=" + rule + " delivery=" + unsafeMarker.ReplaceAllString(delivery, "_") + " -->"
}

// truncNote ends a comment cut to GitHub's limit.
const truncNote = "\n\n… *(cut by hookd: the comment exceeded GitHub's 65536-character limit)*"

// commentBody renders the final comment: the rendered body, cut to fit, then the marker.
func commentBody(body, marker string) string {
	tail := "\n\n" + marker
	if utf16Len(body)+utf16Len(tail) <= MaxCommentLength {
		return body + tail
	}
	room := MaxCommentLength - utf16Len(tail) - utf16Len(truncNote)
	n := 0
	for i, r := range body {
		n += max(utf16.RuneLen(r), 1)
		if n > room {
			return body[:i] + truncNote + tail
		}
	}
	return body + tail
}

// utf16Len counts characters as GitHub's limit does at worst (UTF-16 code units).
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += max(utf16.RuneLen(r), 1)
	}
	return n
}

// target returns the owner, repository and number the comment and labels steps act on.
func (r *Rule) target(in *Input, step string) (owner, repo string, num int, err error) {
	owner, repo, ok := strings.Cut(in.Repository, "/")
	if !ok || owner == "" || repo == "" || in.IssueNumber == 0 {
		return "", "", 0, planner.Permanent(fmt.Errorf("%w (event %s): rules[%s].%s needs one; restrict `on` to issue and pull request events", ErrNoIssue, in.Event, r.cfg.Name, step))
	}
	return owner, repo, in.IssueNumber, nil
}

// postComment posts (append) or creates-or-edits (upsert) the rule's comment and returns its id,
// 0 when the body rendered blank and nothing was posted.
// Before posting it looks for the comment by its marker, so a retry after a crash between
// posting and recording does not post twice.
func (r *Rule) postComment(ctx context.Context, in *Input, data *TemplateData, deps Deps) (int64, error) {
	if deps.GitHub == nil {
		return 0, planner.Permanent(fmt.Errorf("no GitHub client configured; this is a wiring bug in hookd"))
	}
	owner, repo, num, err := r.target(in, "comment")
	if err != nil {
		return 0, err
	}
	text, err := render(r.commentBody, data)
	if err != nil {
		return 0, planner.Permanent(err)
	}
	if strings.TrimSpace(text) == "" {
		// Only the hidden marker would show: a blank comment. Nothing to say, nothing posted.
		return 0, nil
	}
	marker := UpsertMarker(r.cfg.Name)
	if r.cfg.Comment.Mode == ModeAppend {
		marker = AppendMarker(r.cfg.Name, in.Delivery)
	}
	body := commentBody(text, marker)
	existing, err := deps.GitHub.ListComments(ctx, owner, repo, num)
	if err != nil {
		return 0, fmt.Errorf("list comments of %s#%d: %w", in.Repository, num, err)
	}
	for _, c := range existing {
		if !strings.Contains(c.Body, marker) || (r.opts.BotLogin != "" && !strings.EqualFold(c.User, r.opts.BotLogin)) {
			continue
		}
		if r.cfg.Comment.Mode == ModeAppend || c.Body == body {
			return c.ID, nil // posted before a crash, or unchanged
		}
		if err := deps.GitHub.EditComment(ctx, owner, repo, c.ID, body); err != nil {
			return 0, fmt.Errorf("edit comment %d on %s#%d: %w", c.ID, in.Repository, num, err)
		}
		return c.ID, nil
	}
	c, err := deps.GitHub.CreateComment(ctx, owner, repo, num, body)
	if err != nil {
		return 0, fmt.Errorf("comment on %s#%d: %w", in.Repository, num, err)
	}
	return c.ID, nil
}

// applyLabels adds and removes the rule's labels; both are idempotent.
func (r *Rule) applyLabels(ctx context.Context, in *Input, deps Deps) error {
	if deps.GitHub == nil {
		return planner.Permanent(fmt.Errorf("no GitHub client configured; this is a wiring bug in hookd"))
	}
	owner, repo, num, err := r.target(in, "labels")
	if err != nil {
		return err
	}
	l := r.cfg.Labels
	if len(l.Add) > 0 {
		if err := deps.GitHub.AddLabels(ctx, owner, repo, num, l.Add); err != nil {
			return fmt.Errorf("add labels %v to %s#%d: %w", l.Add, in.Repository, num, err)
		}
	}
	for _, name := range l.Remove {
		if err := deps.GitHub.RemoveLabel(ctx, owner, repo, num, name); err != nil {
			return fmt.Errorf("remove label %q from %s#%d: %w", name, in.Repository, num, err)
		}
	}
	return nil
}
