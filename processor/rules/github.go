package rules

import (
	"context"
	"errors"
	"net/http"
	"net/url"

	"github.com/google/go-github/v60/github"
)

// GitHubClient implements GitHub over a go-github client (authenticated as the installation).
type GitHubClient struct {
	Client *github.Client
}

var _ GitHub = GitHubClient{}

// ListComments pages through every comment on the issue or pull request.
func (g GitHubClient) ListComments(ctx context.Context, owner, repo string, number int) ([]Comment, error) {
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	var out []Comment
	for {
		page, resp, err := g.Client.Issues.ListComments(ctx, owner, repo, number, opts)
		if err != nil {
			return nil, err
		}
		for _, c := range page {
			out = append(out, toComment(c))
		}
		if resp == nil || resp.NextPage == 0 {
			return out, nil
		}
		opts.Page = resp.NextPage
	}
}

// CreateComment posts a comment.
func (g GitHubClient) CreateComment(ctx context.Context, owner, repo string, number int, body string) (Comment, error) {
	c, _, err := g.Client.Issues.CreateComment(ctx, owner, repo, number, &github.IssueComment{Body: github.String(body)})
	if err != nil {
		return Comment{}, err
	}
	return toComment(c), nil
}

// EditComment replaces a comment's body.
func (g GitHubClient) EditComment(ctx context.Context, owner, repo string, id int64, body string) error {
	_, _, err := g.Client.Issues.EditComment(ctx, owner, repo, id, &github.IssueComment{Body: github.String(body)})
	return err
}

// AddLabels adds labels to the issue or pull request.
func (g GitHubClient) AddLabels(ctx context.Context, owner, repo string, number int, labels []string) error {
	_, _, err := g.Client.Issues.AddLabelsToIssue(ctx, owner, repo, number, labels)
	return err
}

// RemoveLabel removes a label; GitHub's 404 for a label that is not there is success.
func (g GitHubClient) RemoveLabel(ctx context.Context, owner, repo string, number int, label string) error {
	// go-github puts the name into the path as it is: "kind/bug" would name another path.
	_, err := g.Client.Issues.RemoveLabelForIssue(ctx, owner, repo, number, url.PathEscape(label))
	var er *github.ErrorResponse
	if errors.As(err, &er) && er.Response != nil && er.Response.StatusCode == http.StatusNotFound {
		return nil
	}
	return err
}

func toComment(c *github.IssueComment) Comment {
	return Comment{ID: c.GetID(), Body: c.GetBody(), User: c.GetUser().GetLogin()}
}
