package githubfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"
)

// Issue is a snapshot of an issue or pull request.
type Issue struct {
	ID        int64
	Number    int
	Title     string
	Body      string
	State     string // "open" or "closed"
	User      string
	Labels    []string // sorted
	Comments  int
	IsPull    bool
	UpdatedAt time.Time // whole seconds, like GitHub's updated_at
}

// Comment is a snapshot of an issue comment.
type Comment struct {
	ID    int64
	Issue int
	User  string
	Body  string
}

// PullRequest describes a pull request a user opens.
type PullRequest struct {
	Title string
	Body  string
	Head  string // branch; default "feature"
	Base  string // branch; default "main"
	Draft bool
	Files []PullFile
}

// PullFile is a file changed by a pull request.
type PullFile struct {
	Filename  string
	Status    string // "added", "modified", "removed", …; default "modified"
	Additions int
	Deletions int
	Patch     string
}

type issue struct {
	ID          int64
	Number      int
	Title       string
	Body        string
	State       string
	StateReason string
	User        *user
	Labels      []*label
	Assignees   []*user
	Comments    int
	Locked      bool
	CreatedAt   time.Time
	UpdatedAt   time.Time
	ClosedAt    time.Time
	PR          *pull
}

type pull struct {
	ID               int64
	Head, Base       string
	HeadSHA, BaseSHA string
	Draft            bool
	MergedAt         time.Time
	Files            []PullFile
}

type label struct {
	ID    int64
	Name  string
	Color string
}

type comment struct {
	ID        int64
	Repo      *repo
	Issue     int
	Body      string
	User      *user
	CreatedAt time.Time
	UpdatedAt time.Time
}

func snapshotIssue(is *issue) Issue {
	out := Issue{
		ID: is.ID, Number: is.Number, Title: is.Title, Body: is.Body, State: is.State,
		User: is.User.Login, Comments: is.Comments, IsPull: is.PR != nil, UpdatedAt: is.UpdatedAt,
	}
	for _, l := range sortedLabels(is.Labels) {
		out.Labels = append(out.Labels, l.Name)
	}
	return out
}

func snapshotComment(c *comment) Comment {
	return Comment{ID: c.ID, Issue: c.Issue, User: c.User.Login, Body: c.Body}
}

func (is *issue) hasLabel(name string) bool {
	for _, l := range is.Labels {
		if strings.EqualFold(l.Name, name) {
			return true
		}
	}
	return false
}

// labelLocked returns the repository's label name, creating it like GitHub does when an unknown
// label is added to an issue.
func (f *Fake) labelLocked(r *repo, name string) *label {
	if l := r.labels[strings.ToLower(name)]; l != nil {
		return l
	}
	l := &label{ID: f.newIDLocked(), Name: name, Color: "ededed"}
	r.labels[strings.ToLower(name)] = l
	return l
}

// repoEventLocked builds a webhook about repository r with the fields GitHub puts in every
// repository event (action, repository, sender, installation) plus fields.
func (f *Fake) repoEventLocked(r *repo, event, action string, sender *user, fields map[string]any) outgoing {
	payload := map[string]any{"action": action, "repository": f.repoJSON(r), "sender": f.userJSON(sender)}
	if in := f.installs[r.Installation]; in != nil {
		payload["installation"] = installationRef{ID: in.ID, NodeID: nodeID("MDIz", in.ID)}
	}
	for k, v := range fields {
		payload[k] = v
	}
	return f.outgoingLocked(event, action, r.Installation, r.ID, payload)
}

// issueEventLocked builds issues.<action>, or pull_request.<action> for a pull request.
func (f *Fake) issueEventLocked(r *repo, is *issue, action string, sender *user, fields map[string]any) outgoing {
	if fields == nil {
		fields = map[string]any{}
	}
	if is.PR != nil {
		fields["number"] = is.Number
		fields["pull_request"] = f.pullJSON(r, is)
		return f.repoEventLocked(r, "pull_request", action, sender, fields)
	}
	fields["issue"] = f.issueJSON(r, is)
	return f.repoEventLocked(r, "issues", action, sender, fields)
}

func (f *Fake) newIssueLocked(r *repo, u *user, title, body string) *issue {
	now := f.stampLocked()
	r.lastNumber++
	is := &issue{
		ID: f.newIDLocked(), Number: r.lastNumber, Title: title, Body: body, State: "open",
		User: u, CreatedAt: now, UpdatedAt: now,
	}
	r.issues[is.Number] = is
	return is
}

func (f *Fake) issueLocked(fullName string, number int) (*repo, *issue, error) {
	r, err := f.repoLocked(fullName, false)
	if err != nil {
		return nil, nil, err
	}
	is := r.issues[number]
	if is == nil {
		return nil, nil, fmt.Errorf("githubfake: no issue %s#%d", fullName, number)
	}
	return r, is, nil
}

// OpenIssue is login opening an issue in repo "owner/name" (issues.opened).
func (f *Fake) OpenIssue(repoName, login, title, body string) (Issue, error) {
	f.mu.Lock()
	r, err := f.repoLocked(repoName, false)
	if err != nil {
		f.mu.Unlock()
		return Issue{}, err
	}
	u := f.userLocked(login, "")
	is := f.newIssueLocked(r, u, title, body)
	hook := f.issueEventLocked(r, is, "opened", u, nil)
	snap := snapshotIssue(is)
	f.mu.Unlock()
	f.send([]outgoing{hook})
	return snap, nil
}

// OpenPullRequest is login opening a pull request in repo (pull_request.opened).
func (f *Fake) OpenPullRequest(repoName, login string, pr PullRequest) (Issue, error) {
	f.mu.Lock()
	r, err := f.repoLocked(repoName, false)
	if err != nil {
		f.mu.Unlock()
		return Issue{}, err
	}
	u := f.userLocked(login, "")
	is := f.newIssueLocked(r, u, pr.Title, pr.Body)
	p := &pull{ID: f.newIDLocked(), Head: pr.Head, Base: pr.Base, Draft: pr.Draft, Files: slices.Clone(pr.Files)}
	if p.Head == "" {
		p.Head = "feature"
	}
	if p.Base == "" {
		p.Base = "main"
	}
	p.HeadSHA = fmt.Sprintf("%040x", is.ID*7919)
	p.BaseSHA = fmt.Sprintf("%040x", is.ID*104729)
	for i := range p.Files {
		if p.Files[i].Status == "" {
			p.Files[i].Status = "modified"
		}
	}
	is.PR = p
	hook := f.issueEventLocked(r, is, "opened", u, nil)
	snap := snapshotIssue(is)
	f.mu.Unlock()
	f.send([]outgoing{hook})
	return snap, nil
}

// LabelIssue is login adding labels to an issue or pull request: one issues.labeled (or
// pull_request.labeled) per label not already there.
func (f *Fake) LabelIssue(repoName string, number int, login string, labels ...string) error {
	f.mu.Lock()
	r, is, err := f.issueLocked(repoName, number)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	hooks := f.addLabelsLocked(r, is, f.userLocked(login, ""), labels)
	f.mu.Unlock()
	f.send(hooks)
	return nil
}

// UnlabelIssue is login removing a label (issues.unlabeled); removing an absent label is a
// no-op without webhook.
func (f *Fake) UnlabelIssue(repoName string, number int, login, name string) error {
	f.mu.Lock()
	r, is, err := f.issueLocked(repoName, number)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	var hooks []outgoing
	if l := f.removeLabelLocked(is, name); l != nil {
		hooks = append(hooks, f.issueEventLocked(r, is, "unlabeled", f.userLocked(login, ""), map[string]any{"label": f.labelJSON(r, l)}))
	}
	f.mu.Unlock()
	f.send(hooks)
	return nil
}

// CommentIssue is login commenting on an issue or pull request (issue_comment.created).
func (f *Fake) CommentIssue(repoName string, number int, login, body string) (Comment, error) {
	f.mu.Lock()
	r, is, err := f.issueLocked(repoName, number)
	if err != nil {
		f.mu.Unlock()
		return Comment{}, err
	}
	c, hook := f.addCommentLocked(r, is, f.userLocked(login, ""), body)
	snap := snapshotComment(c)
	f.mu.Unlock()
	f.send([]outgoing{hook})
	return snap, nil
}

// CloseIssue is login closing an issue (issues.closed) or pull request (pull_request.closed).
func (f *Fake) CloseIssue(repoName string, number int, login string) error {
	f.mu.Lock()
	r, is, err := f.issueLocked(repoName, number)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	var hooks []outgoing
	if is.State != "closed" {
		f.setStateLocked(is, "closed", "completed")
		hooks = append(hooks, f.issueEventLocked(r, is, "closed", f.userLocked(login, ""), nil))
	}
	f.mu.Unlock()
	f.send(hooks)
	return nil
}

// Issue returns a snapshot of issue or pull request number in repo.
func (f *Fake) Issue(repoName string, number int) (Issue, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, is, err := f.issueLocked(repoName, number)
	if err != nil {
		return Issue{}, err
	}
	return snapshotIssue(is), nil
}

// Comments returns the comments on issue number in repo, oldest first.
func (f *Fake) Comments(repoName string, number int) ([]Comment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, is, err := f.issueLocked(repoName, number)
	if err != nil {
		return nil, err
	}
	var out []Comment
	for _, c := range f.commentsOfLocked(r, is) {
		out = append(out, snapshotComment(c))
	}
	return out, nil
}

func (f *Fake) commentsOfLocked(r *repo, is *issue) []*comment {
	var out []*comment
	for _, c := range f.comments {
		if c.Repo == r && c.Issue == is.Number {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (f *Fake) setStateLocked(is *issue, state, reason string) {
	now := f.stampLocked()
	is.State, is.UpdatedAt = state, now
	if state == "closed" {
		is.ClosedAt, is.StateReason = now, reason
	} else {
		is.ClosedAt, is.StateReason = time.Time{}, reason
	}
}

func (f *Fake) addLabelsLocked(r *repo, is *issue, sender *user, names []string) []outgoing {
	var hooks []outgoing
	for _, n := range names {
		if n == "" || is.hasLabel(n) {
			continue
		}
		l := f.labelLocked(r, n)
		is.Labels = append(is.Labels, l)
		is.UpdatedAt = f.stampLocked()
		hooks = append(hooks, f.issueEventLocked(r, is, "labeled", sender, map[string]any{"label": f.labelJSON(r, l)}))
	}
	return hooks
}

func (f *Fake) removeLabelLocked(is *issue, name string) *label {
	for i, l := range is.Labels {
		if strings.EqualFold(l.Name, name) {
			is.Labels = append(is.Labels[:i], is.Labels[i+1:]...)
			is.UpdatedAt = f.stampLocked()
			return l
		}
	}
	return nil
}

func (f *Fake) addCommentLocked(r *repo, is *issue, u *user, body string) (*comment, outgoing) {
	now := f.stampLocked()
	c := &comment{ID: f.newIDLocked(), Repo: r, Issue: is.Number, Body: body, User: u, CreatedAt: now, UpdatedAt: now}
	f.comments[c.ID] = c
	is.Comments++
	is.UpdatedAt = now
	return c, f.repoEventLocked(r, "issue_comment", "created", u, map[string]any{
		"issue": f.issueJSON(r, is), "comment": f.commentJSON(c),
	})
}

// ---- API ----

// issue resolves {owner}/{repo}/issues/{number} for the call.
func (f *Fake) issue(c *call) (*repo, *issue, *reply) {
	r, bad := f.repo(c)
	if bad != nil {
		return nil, nil, bad
	}
	n, bad := pathInt(c, "number")
	if bad != nil {
		return nil, nil, bad
	}
	is := r.issues[int(n)]
	if is == nil {
		rep := fail(http.StatusNotFound, msgNotFound)
		return nil, nil, &rep
	}
	return r, is, nil
}

// needIssues checks the permission for an issue, or for a pull request either issues or
// pull_requests, like GitHub.
// issueWith is issue plus the permission check: the token may act on the issue at level ("read"
// or "write"; issues permission, or pull_requests for a pull request).
func (f *Fake) issueWith(c *call, level string) (*repo, *issue, *reply) {
	r, is, bad := f.issue(c)
	if bad != nil {
		return nil, nil, bad
	}
	if bad := c.needIssues(is, level); bad != nil {
		return nil, nil, bad
	}
	return r, is, nil
}

func (c *call) needIssues(is *issue, level string) *reply {
	bad := c.need("issues", level)
	if bad != nil && is != nil && is.PR != nil {
		return c.need("pull_requests", level)
	}
	return bad
}

func (f *Fake) listIssues(c *call) reply {
	r, bad := f.repo(c)
	if bad != nil {
		return *bad
	}
	if bad := c.need("issues", "read"); bad != nil {
		return *bad
	}
	q := c.r.URL.Query()
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	var since time.Time
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return invalid("Issue", "since", "invalid")
		}
		since = t
	}
	var want []string
	if l := q.Get("labels"); l != "" {
		want = strings.Split(l, ",")
	}
	var list []*issue
	for _, is := range r.issues {
		if state != "all" && is.State != state {
			continue
		}
		if !since.IsZero() && is.UpdatedAt.Before(since) { // "updated at or after", like GitHub
			continue
		}
		okLabels := true
		for _, w := range want {
			okLabels = okLabels && is.hasLabel(strings.TrimSpace(w))
		}
		if okLabels {
			list = append(list, is)
		}
	}
	key := func(is *issue) time.Time { return is.CreatedAt }
	switch q.Get("sort") {
	case "updated":
		key = func(is *issue) time.Time { return is.UpdatedAt }
	case "comments":
		key = func(is *issue) time.Time { return time.Unix(int64(is.Comments), 0) }
	}
	// GitHub documents no order among items with equal keys (updated_at has whole seconds, so
	// ties are common); the fake breaks them by number, in the same direction.
	asc := q.Get("direction") == "asc"
	sort.SliceStable(list, func(i, j int) bool {
		a, b := key(list[i]), key(list[j])
		if a.Equal(b) {
			a, b = time.Unix(int64(list[i].Number), 0), time.Unix(int64(list[j].Number), 0)
		}
		if asc {
			return a.Before(b)
		}
		return b.Before(a)
	})
	rep := reply{status: http.StatusOK}
	lo, hi := f.paginate(c, len(list), &rep)
	out := []*issueJSON{}
	for _, is := range list[lo:hi] {
		out = append(out, f.issueJSON(r, is))
	}
	rep.body = out
	return rep
}

func (f *Fake) getIssue(c *call) reply {
	r, is, bad := f.issueWith(c, "read")
	if bad != nil {
		return *bad
	}
	return ok(f.issueJSON(r, is))
}

func (f *Fake) createIssue(c *call) reply {
	r, bad := f.repo(c)
	if bad != nil {
		return *bad
	}
	if bad := c.need("issues", "write"); bad != nil {
		return *bad
	}
	var req struct {
		Title  string   `json:"title"`
		Body   string   `json:"body"`
		Labels []string `json:"labels"`
	}
	if bad := decodeBody(c, &req); bad != nil {
		return *bad
	}
	if req.Title == "" {
		return invalid("Issue", "title", "missing_field")
	}
	is := f.newIssueLocked(r, f.bot, req.Title, req.Body)
	for _, n := range req.Labels {
		is.Labels = append(is.Labels, f.labelLocked(r, n))
	}
	return reply{status: http.StatusCreated, body: f.issueJSON(r, is), hooks: []outgoing{f.issueEventLocked(r, is, "opened", f.bot, nil)}}
}

func (f *Fake) editIssue(c *call) reply {
	r, is, bad := f.issueWith(c, "write")
	if bad != nil {
		return *bad
	}
	var req struct {
		Title       *string   `json:"title"`
		Body        *string   `json:"body"`
		State       *string   `json:"state"`
		StateReason *string   `json:"state_reason"`
		Labels      *[]string `json:"labels"`
	}
	if bad := decodeBody(c, &req); bad != nil {
		return *bad
	}
	var hooks []outgoing
	changes := map[string]any{}
	if req.Title != nil && *req.Title != is.Title {
		changes["title"] = map[string]string{"from": is.Title}
		is.Title = *req.Title
	}
	if req.Body != nil && *req.Body != is.Body {
		changes["body"] = map[string]string{"from": is.Body}
		is.Body = *req.Body
	}
	if len(changes) > 0 {
		is.UpdatedAt = f.stampLocked()
		hooks = append(hooks, f.issueEventLocked(r, is, "edited", f.bot, map[string]any{"changes": changes}))
	}
	if req.State != nil && *req.State != is.State {
		switch *req.State {
		case "closed":
			reason := "completed"
			if req.StateReason != nil {
				reason = *req.StateReason
			}
			f.setStateLocked(is, "closed", reason)
			hooks = append(hooks, f.issueEventLocked(r, is, "closed", f.bot, nil))
		case "open":
			f.setStateLocked(is, "open", "reopened")
			hooks = append(hooks, f.issueEventLocked(r, is, "reopened", f.bot, nil))
		default:
			return invalid("Issue", "state", "invalid")
		}
	}
	if req.Labels != nil {
		hooks = append(hooks, f.setLabelsLocked(r, is, *req.Labels)...)
	}
	return reply{status: http.StatusOK, body: f.issueJSON(r, is), hooks: hooks}
}

func (f *Fake) setLabelsLocked(r *repo, is *issue, names []string) []outgoing {
	var hooks []outgoing
	for _, l := range slices.Clone(is.Labels) {
		if !slices.ContainsFunc(names, func(n string) bool { return strings.EqualFold(n, l.Name) }) {
			f.removeLabelLocked(is, l.Name)
			hooks = append(hooks, f.issueEventLocked(r, is, "unlabeled", f.bot, map[string]any{"label": f.labelJSON(r, l)}))
		}
	}
	return append(hooks, f.addLabelsLocked(r, is, f.bot, names)...)
}

func (f *Fake) listIssueLabels(c *call) reply {
	r, is, bad := f.issueWith(c, "read")
	if bad != nil {
		return *bad
	}
	return ok(f.labelsJSON(r, is))
}

func (f *Fake) labelsJSON(r *repo, is *issue) []labelJSON {
	out := []labelJSON{}
	for _, l := range sortedLabels(is.Labels) {
		out = append(out, f.labelJSON(r, l))
	}
	return out
}

// labelNames decodes a label request body: a JSON array of names or {"labels": [...]}.
func labelNames(c *call) ([]string, *reply) {
	var raw json.RawMessage
	if bad := decodeBody(c, &raw); bad != nil {
		return nil, bad
	}
	var names []string
	if json.Unmarshal(raw, &names) == nil {
		return names, nil
	}
	var obj struct {
		Labels []string `json:"labels"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		rep := invalid("Label", "labels", "invalid")
		return nil, &rep
	}
	return obj.Labels, nil
}

func (f *Fake) addLabels(c *call) reply {
	r, is, bad := f.issueWith(c, "write")
	if bad != nil {
		return *bad
	}
	names, bad := labelNames(c)
	if bad != nil {
		return *bad
	}
	hooks := f.addLabelsLocked(r, is, f.bot, names)
	return reply{status: http.StatusOK, body: f.labelsJSON(r, is), hooks: hooks}
}

func (f *Fake) replaceLabels(c *call) reply {
	r, is, bad := f.issueWith(c, "write")
	if bad != nil {
		return *bad
	}
	names, bad := labelNames(c)
	if bad != nil {
		return *bad
	}
	hooks := f.setLabelsLocked(r, is, names)
	return reply{status: http.StatusOK, body: f.labelsJSON(r, is), hooks: hooks}
}

func (f *Fake) removeLabel(c *call) reply {
	r, is, bad := f.issueWith(c, "write")
	if bad != nil {
		return *bad
	}
	l := f.removeLabelLocked(is, c.r.PathValue("name"))
	if l == nil {
		return fail(http.StatusNotFound, "Label does not exist")
	}
	hook := f.issueEventLocked(r, is, "unlabeled", f.bot, map[string]any{"label": f.labelJSON(r, l)})
	return reply{status: http.StatusOK, body: f.labelsJSON(r, is), hooks: []outgoing{hook}}
}

func (f *Fake) listComments(c *call) reply {
	r, is, bad := f.issueWith(c, "read")
	if bad != nil {
		return *bad
	}
	var since time.Time
	if s := c.r.URL.Query().Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			return invalid("IssueComment", "since", "invalid")
		}
		since = t
	}
	var list []*comment
	for _, cm := range f.commentsOfLocked(r, is) {
		if since.IsZero() || !cm.UpdatedAt.Before(since) {
			list = append(list, cm)
		}
	}
	rep := reply{status: http.StatusOK}
	lo, hi := f.paginate(c, len(list), &rep)
	out := []*commentJSON{}
	for _, cm := range list[lo:hi] {
		out = append(out, f.commentJSON(cm))
	}
	rep.body = out
	return rep
}

func (f *Fake) createComment(c *call) reply {
	r, is, bad := f.issueWith(c, "write")
	if bad != nil {
		return *bad
	}
	body, bad := commentBody(c)
	if bad != nil {
		return *bad
	}
	cm, hook := f.addCommentLocked(r, is, f.bot, body)
	return reply{status: http.StatusCreated, body: f.commentJSON(cm), hooks: []outgoing{hook}}
}

// commentBody reads a comment request's non-empty "body".
func commentBody(c *call) (string, *reply) {
	var req struct {
		Body string `json:"body"`
	}
	if bad := decodeBody(c, &req); bad != nil {
		return "", bad
	}
	if req.Body == "" {
		rep := invalid("IssueComment", "body", "missing_field")
		return "", &rep
	}
	return req.Body, nil
}

// comment resolves {owner}/{repo}/issues/comments/{id} for the call.
func (f *Fake) comment(c *call) (*repo, *comment, *reply) {
	r, bad := f.repo(c)
	if bad != nil {
		return nil, nil, bad
	}
	id, bad := pathInt(c, "id")
	if bad != nil {
		return nil, nil, bad
	}
	cm := f.comments[id]
	if cm == nil || cm.Repo != r {
		rep := fail(http.StatusNotFound, msgNotFound)
		return nil, nil, &rep
	}
	return r, cm, nil
}

func (f *Fake) getComment(c *call) reply {
	r, cm, bad := f.comment(c)
	if bad != nil {
		return *bad
	}
	if bad := c.needIssues(r.issues[cm.Issue], "read"); bad != nil {
		return *bad
	}
	return ok(f.commentJSON(cm))
}

func (f *Fake) editComment(c *call) reply {
	r, cm, bad := f.comment(c)
	if bad != nil {
		return *bad
	}
	is := r.issues[cm.Issue]
	if bad := c.needIssues(is, "write"); bad != nil {
		return *bad
	}
	body, bad := commentBody(c)
	if bad != nil {
		return *bad
	}
	var hooks []outgoing
	if body != cm.Body {
		from := cm.Body
		cm.Body, cm.UpdatedAt = body, f.stampLocked()
		hooks = append(hooks, f.repoEventLocked(r, "issue_comment", "edited", f.bot, map[string]any{
			"issue": f.issueJSON(r, is), "comment": f.commentJSON(cm),
			"changes": map[string]any{"body": map[string]string{"from": from}},
		}))
	}
	return reply{status: http.StatusOK, body: f.commentJSON(cm), hooks: hooks}
}

func (f *Fake) deleteComment(c *call) reply {
	r, cm, bad := f.comment(c)
	if bad != nil {
		return *bad
	}
	is := r.issues[cm.Issue]
	if bad := c.needIssues(is, "write"); bad != nil {
		return *bad
	}
	delete(f.comments, cm.ID)
	is.Comments--
	hook := f.repoEventLocked(r, "issue_comment", "deleted", f.bot, map[string]any{
		"issue": f.issueJSON(r, is), "comment": f.commentJSON(cm),
	})
	return reply{status: http.StatusNoContent, hooks: []outgoing{hook}}
}

// pull is issue for a pull request the token may read; 404 for an issue that is not one.
func (f *Fake) pull(c *call) (*repo, *issue, *reply) {
	r, is, bad := f.issue(c)
	if bad == nil && is.PR == nil {
		rep := fail(http.StatusNotFound, msgNotFound)
		bad = &rep
	}
	if bad == nil {
		bad = c.need("pull_requests", "read")
	}
	if bad != nil {
		return nil, nil, bad
	}
	return r, is, nil
}

func (f *Fake) getPull(c *call) reply {
	r, is, bad := f.pull(c)
	if bad != nil {
		return *bad
	}
	return ok(f.pullJSON(r, is))
}

func (f *Fake) listPullFiles(c *call) reply {
	r, is, bad := f.pull(c)
	if bad != nil {
		return *bad
	}
	files := is.PR.Files
	rep := reply{status: http.StatusOK}
	lo, hi := f.paginate(c, len(files), &rep)
	out := []pullFileJSON{}
	for i, pf := range files[lo:hi] {
		blob := f.htmlURL(fmt.Sprintf("%s/blob/%s/%s", r.FullName(), is.PR.HeadSHA, pf.Filename))
		out = append(out, pullFileJSON{
			SHA: fmt.Sprintf("%040x", is.PR.ID*31+int64(lo+i)), Filename: pf.Filename, Status: pf.Status,
			Additions: pf.Additions, Deletions: pf.Deletions, Changes: pf.Additions + pf.Deletions,
			BlobURL: blob, RawURL: strings.Replace(blob, "/blob/", "/raw/", 1), Patch: pf.Patch,
		})
	}
	rep.body = out
	return rep
}
