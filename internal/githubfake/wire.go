package githubfake

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// JSON shapes of GitHub's REST API and webhook payloads. Field names and nullability follow
// GitHub (nullable fields are pointers without omitempty so they render as null, like GitHub).

func ghTime(t time.Time) string { return t.UTC().Truncate(time.Second).Format(time.RFC3339) }

func ghTimePtr(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := ghTime(t)
	return &s
}

func nodeID(prefix string, id int64) string { return fmt.Sprintf("%s_kgDO%08d", prefix, id) }

type userJSON struct {
	Login     string `json:"login"`
	ID        int64  `json:"id"`
	NodeID    string `json:"node_id"`
	AvatarURL string `json:"avatar_url"`
	URL       string `json:"url"`
	HTMLURL   string `json:"html_url"`
	Type      string `json:"type"`
	SiteAdmin bool   `json:"site_admin"`
}

func (f *Fake) userJSON(u *user) *userJSON {
	if u == nil {
		return nil
	}
	return &userJSON{
		Login: u.Login, ID: u.ID, NodeID: nodeID("U", u.ID),
		AvatarURL: fmt.Sprintf("https://avatars.githubusercontent.com/u/%d?v=4", u.ID),
		URL:       f.baseURL + "users/" + u.Login, HTMLURL: f.htmlURL(u.Login),
		Type: u.Type,
	}
}

type repoJSON struct {
	ID            int64     `json:"id"`
	NodeID        string    `json:"node_id"`
	Name          string    `json:"name"`
	FullName      string    `json:"full_name"`
	Private       bool      `json:"private"`
	Owner         *userJSON `json:"owner"`
	HTMLURL       string    `json:"html_url"`
	Description   *string   `json:"description"`
	Fork          bool      `json:"fork"`
	URL           string    `json:"url"`
	IssuesURL     string    `json:"issues_url"`
	PullsURL      string    `json:"pulls_url"`
	CreatedAt     string    `json:"created_at"`
	UpdatedAt     string    `json:"updated_at"`
	PushedAt      string    `json:"pushed_at"`
	DefaultBranch string    `json:"default_branch"`
	Archived      bool      `json:"archived"`
	Disabled      bool      `json:"disabled"`
	Visibility    string    `json:"visibility"`
	HasIssues     bool      `json:"has_issues"`
	OpenIssues    int       `json:"open_issues_count"`
}

func (f *Fake) repoJSON(r *repo) *repoJSON {
	vis := "public"
	if r.Private {
		vis = "private"
	}
	open := 0
	for _, is := range r.issues {
		if is.State == "open" {
			open++
		}
	}
	api := f.baseURL + "repos/" + r.FullName()
	return &repoJSON{
		ID: r.ID, NodeID: nodeID("R", r.ID), Name: r.Name, FullName: r.FullName(),
		Private: r.Private, Owner: f.userJSON(r.Owner), HTMLURL: f.htmlURL(r.FullName()),
		URL: api, IssuesURL: api + "/issues{/number}", PullsURL: api + "/pulls{/number}",
		CreatedAt: ghTime(r.CreatedAt), UpdatedAt: ghTime(r.CreatedAt), PushedAt: ghTime(r.CreatedAt),
		DefaultBranch: "main", Visibility: vis, HasIssues: true, OpenIssues: open,
	}
}

// shortRepoJSON is the repository shape in installation payloads (repositories_added, …).
type shortRepoJSON struct {
	ID       int64  `json:"id"`
	NodeID   string `json:"node_id"`
	Name     string `json:"name"`
	FullName string `json:"full_name"`
	Private  bool   `json:"private"`
}

func shortRepo(r *repo) shortRepoJSON {
	return shortRepoJSON{ID: r.ID, NodeID: nodeID("R", r.ID), Name: r.Name, FullName: r.FullName(), Private: r.Private}
}

type labelJSON struct {
	ID          int64   `json:"id"`
	NodeID      string  `json:"node_id"`
	URL         string  `json:"url"`
	Name        string  `json:"name"`
	Color       string  `json:"color"`
	Default     bool    `json:"default"`
	Description *string `json:"description"`
}

func (f *Fake) labelJSON(r *repo, l *label) labelJSON {
	return labelJSON{
		ID: l.ID, NodeID: nodeID("LA", l.ID), Name: l.Name, Color: l.Color,
		URL: f.baseURL + "repos/" + r.FullName() + "/labels/" + l.Name,
	}
}

type issuePRLinkJSON struct {
	URL      string  `json:"url"`
	HTMLURL  string  `json:"html_url"`
	DiffURL  string  `json:"diff_url"`
	PatchURL string  `json:"patch_url"`
	MergedAt *string `json:"merged_at"`
}

type issueJSON struct {
	URL               string           `json:"url"`
	RepositoryURL     string           `json:"repository_url"`
	LabelsURL         string           `json:"labels_url"`
	CommentsURL       string           `json:"comments_url"`
	EventsURL         string           `json:"events_url"`
	HTMLURL           string           `json:"html_url"`
	ID                int64            `json:"id"`
	NodeID            string           `json:"node_id"`
	Number            int              `json:"number"`
	Title             string           `json:"title"`
	User              *userJSON        `json:"user"`
	Labels            []labelJSON      `json:"labels"`
	State             string           `json:"state"`
	StateReason       *string          `json:"state_reason"`
	Locked            bool             `json:"locked"`
	Assignee          *userJSON        `json:"assignee"`
	Assignees         []*userJSON      `json:"assignees"`
	Milestone         *struct{}        `json:"milestone"`
	Comments          int              `json:"comments"`
	CreatedAt         string           `json:"created_at"`
	UpdatedAt         string           `json:"updated_at"`
	ClosedAt          *string          `json:"closed_at"`
	AuthorAssociation string           `json:"author_association"`
	ActiveLockReason  *string          `json:"active_lock_reason"`
	Body              *string          `json:"body"`
	PullRequest       *issuePRLinkJSON `json:"pull_request,omitempty"`
}

func (f *Fake) issueJSON(r *repo, is *issue) *issueJSON {
	api := f.baseURL + "repos/" + r.FullName() + "/issues/" + fmt.Sprint(is.Number)
	kind := "issues"
	if is.PR != nil {
		kind = "pull"
	}
	out := &issueJSON{
		URL: api, RepositoryURL: f.baseURL + "repos/" + r.FullName(),
		LabelsURL: api + "/labels{/name}", CommentsURL: api + "/comments", EventsURL: api + "/events",
		HTMLURL: f.htmlURL(fmt.Sprintf("%s/%s/%d", r.FullName(), kind, is.Number)),
		ID:      is.ID, NodeID: nodeID("I", is.ID), Number: is.Number, Title: is.Title,
		User: f.userJSON(is.User), Labels: []labelJSON{}, State: is.State, Locked: is.Locked,
		Assignees: []*userJSON{}, Comments: is.Comments, CreatedAt: ghTime(is.CreatedAt),
		UpdatedAt: ghTime(is.UpdatedAt), ClosedAt: ghTimePtr(is.ClosedAt),
		AuthorAssociation: association(r, is.User),
	}
	if is.StateReason != "" {
		s := is.StateReason
		out.StateReason = &s
	}
	if is.Body != "" {
		b := is.Body
		out.Body = &b
	}
	for _, l := range is.Labels {
		out.Labels = append(out.Labels, f.labelJSON(r, l))
	}
	for _, a := range is.Assignees {
		out.Assignees = append(out.Assignees, f.userJSON(a))
	}
	if len(is.Assignees) > 0 {
		out.Assignee = f.userJSON(is.Assignees[0])
	}
	if is.PR != nil {
		pr := f.baseURL + "repos/" + r.FullName() + "/pulls/" + fmt.Sprint(is.Number)
		html := f.htmlURL(fmt.Sprintf("%s/pull/%d", r.FullName(), is.Number))
		out.PullRequest = &issuePRLinkJSON{
			URL: pr, HTMLURL: html, DiffURL: html + ".diff", PatchURL: html + ".patch",
			MergedAt: ghTimePtr(is.PR.MergedAt),
		}
	}
	return out
}

func association(r *repo, u *user) string {
	switch {
	case u == nil:
		return "NONE"
	case u.ID == r.Owner.ID:
		return "OWNER"
	case u.Type == "Bot":
		return "NONE"
	default:
		return "CONTRIBUTOR"
	}
}

type commentJSON struct {
	URL                   string    `json:"url"`
	HTMLURL               string    `json:"html_url"`
	IssueURL              string    `json:"issue_url"`
	ID                    int64     `json:"id"`
	NodeID                string    `json:"node_id"`
	User                  *userJSON `json:"user"`
	CreatedAt             string    `json:"created_at"`
	UpdatedAt             string    `json:"updated_at"`
	AuthorAssociation     string    `json:"author_association"`
	Body                  string    `json:"body"`
	PerformedViaGitHubApp *appJSON  `json:"performed_via_github_app"`
}

func (f *Fake) commentJSON(c *comment) *commentJSON {
	r := c.Repo
	issueURL := f.baseURL + "repos/" + r.FullName() + "/issues/" + fmt.Sprint(c.Issue)
	out := &commentJSON{
		URL:      f.baseURL + "repos/" + r.FullName() + "/issues/comments/" + fmt.Sprint(c.ID),
		HTMLURL:  f.htmlURL(fmt.Sprintf("%s/issues/%d#issuecomment-%d", r.FullName(), c.Issue, c.ID)),
		IssueURL: issueURL, ID: c.ID, NodeID: nodeID("IC", c.ID), User: f.userJSON(c.User),
		CreatedAt: ghTime(c.CreatedAt), UpdatedAt: ghTime(c.UpdatedAt),
		AuthorAssociation: association(r, c.User), Body: c.Body,
	}
	if c.User == f.bot {
		out.PerformedViaGitHubApp = f.appJSON()
	}
	return out
}

type appJSON struct {
	ID          int64             `json:"id"`
	Slug        string            `json:"slug"`
	NodeID      string            `json:"node_id"`
	Owner       *userJSON         `json:"owner"`
	Name        string            `json:"name"`
	Description string            `json:"description"`
	ExternalURL string            `json:"external_url"`
	HTMLURL     string            `json:"html_url"`
	CreatedAt   string            `json:"created_at"`
	UpdatedAt   string            `json:"updated_at"`
	Permissions map[string]string `json:"permissions"`
	Events      []string          `json:"events"`
}

func (f *Fake) appJSON() *appJSON {
	created := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	return &appJSON{
		ID: f.opts.AppID, Slug: f.opts.Slug, NodeID: nodeID("A", f.opts.AppID),
		Owner: f.userJSON(f.userLocked("hookd", "Organization")), Name: f.opts.Name,
		ExternalURL: "https://hookd.invalid", HTMLURL: f.htmlURL("apps/" + f.opts.Slug),
		CreatedAt: ghTime(created), UpdatedAt: ghTime(created),
		Permissions: f.opts.Permissions, Events: f.opts.Events,
	}
}

type installationJSON struct {
	ID                  int64             `json:"id"`
	NodeID              string            `json:"node_id,omitempty"`
	Account             *userJSON         `json:"account"`
	RepositorySelection string            `json:"repository_selection"`
	AccessTokensURL     string            `json:"access_tokens_url"`
	RepositoriesURL     string            `json:"repositories_url"`
	HTMLURL             string            `json:"html_url"`
	AppID               int64             `json:"app_id"`
	AppSlug             string            `json:"app_slug"`
	TargetID            int64             `json:"target_id"`
	TargetType          string            `json:"target_type"`
	Permissions         map[string]string `json:"permissions"`
	Events              []string          `json:"events"`
	CreatedAt           string            `json:"created_at"`
	UpdatedAt           string            `json:"updated_at"`
	SingleFileName      *string           `json:"single_file_name"`
	SuspendedBy         *userJSON         `json:"suspended_by"`
	SuspendedAt         *string           `json:"suspended_at"`
}

func (f *Fake) installationJSON(in *installation) *installationJSON {
	return &installationJSON{
		ID: in.ID, NodeID: nodeID("MDIz", in.ID), Account: f.userJSON(in.Account),
		RepositorySelection: "selected",
		AccessTokensURL:     fmt.Sprintf("%sapp/installations/%d/access_tokens", f.baseURL, in.ID),
		RepositoriesURL:     f.baseURL + "installation/repositories",
		HTMLURL:             f.htmlURL(fmt.Sprintf("organizations/%s/settings/installations/%d", in.Account.Login, in.ID)),
		AppID:               f.opts.AppID, AppSlug: f.opts.Slug,
		TargetID: in.Account.ID, TargetType: in.Account.Type,
		Permissions: f.opts.Permissions, Events: f.opts.Events,
		CreatedAt: ghTime(in.CreatedAt), UpdatedAt: ghTime(in.CreatedAt),
		SuspendedBy: f.userJSON(in.SuspendedBy), SuspendedAt: ghTimePtr(in.SuspendedAt),
	}
}

// installationRef is the installation object in repository-scoped webhook payloads.
type installationRef struct {
	ID     int64  `json:"id"`
	NodeID string `json:"node_id"`
}

type branchJSON struct {
	Label string    `json:"label"`
	Ref   string    `json:"ref"`
	SHA   string    `json:"sha"`
	User  *userJSON `json:"user"`
	Repo  *repoJSON `json:"repo"`
}

type pullJSON struct {
	URL                string      `json:"url"`
	ID                 int64       `json:"id"`
	NodeID             string      `json:"node_id"`
	HTMLURL            string      `json:"html_url"`
	DiffURL            string      `json:"diff_url"`
	PatchURL           string      `json:"patch_url"`
	IssueURL           string      `json:"issue_url"`
	Number             int         `json:"number"`
	State              string      `json:"state"`
	Locked             bool        `json:"locked"`
	Title              string      `json:"title"`
	User               *userJSON   `json:"user"`
	Body               *string     `json:"body"`
	Labels             []labelJSON `json:"labels"`
	CreatedAt          string      `json:"created_at"`
	UpdatedAt          string      `json:"updated_at"`
	ClosedAt           *string     `json:"closed_at"`
	MergedAt           *string     `json:"merged_at"`
	MergeCommitSHA     *string     `json:"merge_commit_sha"`
	Assignee           *userJSON   `json:"assignee"`
	Assignees          []*userJSON `json:"assignees"`
	RequestedReviewers []*userJSON `json:"requested_reviewers"`
	Draft              bool        `json:"draft"`
	Head               branchJSON  `json:"head"`
	Base               branchJSON  `json:"base"`
	AuthorAssociation  string      `json:"author_association"`
	Merged             bool        `json:"merged"`
	Comments           int         `json:"comments"`
	Commits            int         `json:"commits"`
	Additions          int         `json:"additions"`
	Deletions          int         `json:"deletions"`
	ChangedFiles       int         `json:"changed_files"`
}

func (f *Fake) pullJSON(r *repo, is *issue) *pullJSON {
	pr := is.PR
	html := f.htmlURL(fmt.Sprintf("%s/pull/%d", r.FullName(), is.Number))
	rj := f.repoJSON(r)
	out := &pullJSON{
		URL: f.baseURL + "repos/" + r.FullName() + "/pulls/" + fmt.Sprint(is.Number),
		ID:  pr.ID, NodeID: nodeID("PR", pr.ID), HTMLURL: html, DiffURL: html + ".diff",
		PatchURL: html + ".patch",
		IssueURL: f.baseURL + "repos/" + r.FullName() + "/issues/" + fmt.Sprint(is.Number),
		Number:   is.Number, State: is.State, Locked: is.Locked, Title: is.Title,
		User: f.userJSON(is.User), Labels: []labelJSON{}, CreatedAt: ghTime(is.CreatedAt),
		UpdatedAt: ghTime(is.UpdatedAt), ClosedAt: ghTimePtr(is.ClosedAt),
		MergedAt: ghTimePtr(pr.MergedAt), Assignees: []*userJSON{},
		RequestedReviewers: []*userJSON{}, Draft: pr.Draft,
		Head:              branchJSON{Label: r.Owner.Login + ":" + pr.Head, Ref: pr.Head, SHA: pr.HeadSHA, User: f.userJSON(r.Owner), Repo: rj},
		Base:              branchJSON{Label: r.Owner.Login + ":" + pr.Base, Ref: pr.Base, SHA: pr.BaseSHA, User: f.userJSON(r.Owner), Repo: rj},
		AuthorAssociation: association(r, is.User), Merged: !pr.MergedAt.IsZero(),
		Comments: is.Comments, Commits: 1, ChangedFiles: len(pr.Files),
	}
	if is.Body != "" {
		b := is.Body
		out.Body = &b
	}
	for _, l := range is.Labels {
		out.Labels = append(out.Labels, f.labelJSON(r, l))
	}
	for _, pf := range pr.Files {
		out.Additions += pf.Additions
		out.Deletions += pf.Deletions
	}
	return out
}

type pullFileJSON struct {
	SHA       string `json:"sha"`
	Filename  string `json:"filename"`
	Status    string `json:"status"`
	Additions int    `json:"additions"`
	Deletions int    `json:"deletions"`
	Changes   int    `json:"changes"`
	BlobURL   string `json:"blob_url"`
	RawURL    string `json:"raw_url"`
	Patch     string `json:"patch,omitempty"`
}

// sortedLabels returns labels sorted by name, the order GitHub lists them in.
func sortedLabels(ls []*label) []*label {
	out := append([]*label(nil), ls...)
	sort.Slice(out, func(i, j int) bool { return strings.ToLower(out[i].Name) < strings.ToLower(out[j].Name) })
	return out
}
