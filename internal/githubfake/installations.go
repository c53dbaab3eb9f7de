package githubfake

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// Admin is the login of the person who performs administrative user actions (installing,
// suspending, adding repositories): the sender of installation webhooks.
const Admin = "octocat"

// Installation is a snapshot of an installation of the app.
type Installation struct {
	ID        int64
	Account   string
	Repos     []Repo
	Suspended bool
}

// Repo is a snapshot of a repository.
type Repo struct {
	ID           int64
	Owner        string
	Name         string
	Installation int64 // 0 when the app is not installed on it
}

// FullName is "owner/name".
func (r Repo) FullName() string { return r.Owner + "/" + r.Name }

type installation struct {
	ID          int64
	Account     *user
	Repos       []*repo // in the order they were added
	CreatedAt   time.Time
	SuspendedAt time.Time
	SuspendedBy *user
}

func (in *installation) repoNamed(name string) *repo {
	for _, r := range in.Repos {
		if strings.EqualFold(r.Name, name) || strings.EqualFold(r.FullName(), name) {
			return r
		}
	}
	return nil
}

type repo struct {
	ID           int64
	Owner        *user
	Name         string
	Private      bool
	CreatedAt    time.Time
	Installation int64
	issues       map[int]*issue
	lastNumber   int
	labels       map[string]*label // by lower-case name
}

func (r *repo) FullName() string { return r.Owner.Login + "/" + r.Name }

func (f *Fake) snapshotInstallation(in *installation) Installation {
	out := Installation{ID: in.ID, Account: in.Account.Login, Suspended: !in.SuspendedAt.IsZero()}
	for _, r := range in.Repos {
		out.Repos = append(out.Repos, snapshotRepo(r))
	}
	return out
}

func snapshotRepo(r *repo) Repo {
	return Repo{ID: r.ID, Owner: r.Owner.Login, Name: r.Name, Installation: r.Installation}
}

// repoLocked returns the repository "owner/name", creating it (and its owner, an organization
// unless the account already exists) when create is true.
func (f *Fake) repoLocked(fullName string, create bool) (*repo, error) {
	owner, name, found := strings.Cut(fullName, "/")
	if !found || owner == "" || name == "" || strings.Contains(name, "/") {
		return nil, fmt.Errorf("githubfake: repository %q: want \"owner/name\"", fullName)
	}
	if r := f.repos[strings.ToLower(fullName)]; r != nil {
		return r, nil
	}
	if !create {
		return nil, fmt.Errorf("githubfake: no repository %q", fullName)
	}
	r := &repo{
		ID: f.newIDLocked(), Owner: f.userLocked(owner, "Organization"), Name: name,
		CreatedAt: f.stampLocked(), issues: map[int]*issue{}, labels: map[string]*label{},
	}
	f.repos[strings.ToLower(fullName)] = r
	f.reposByID[r.ID] = r
	return r, nil
}

// AddInstallation installs the app on account with the repositories named (short names under
// account, or "owner/name"), creating them as needed, and sends installation.created.
func (f *Fake) AddInstallation(account string, repos ...string) (Installation, error) {
	f.mu.Lock()
	for _, in := range f.installs {
		if strings.EqualFold(in.Account.Login, account) {
			f.mu.Unlock()
			return Installation{}, fmt.Errorf("githubfake: the app is already installed on %s (installation %d)", account, in.ID)
		}
	}
	in := &installation{ID: f.newIDLocked(), Account: f.userLocked(account, "Organization"), CreatedAt: f.stampLocked()}
	added, err := f.attachLocked(in, repos)
	if err != nil {
		f.mu.Unlock()
		return Installation{}, err
	}
	f.installs[in.ID] = in
	hook := f.installationHookLocked(in, "created", map[string]any{
		"repositories": shortRepos(added), "requester": nil,
	})
	snap := f.snapshotInstallation(in)
	f.mu.Unlock()
	f.send([]outgoing{hook})
	return snap, nil
}

func (f *Fake) attachLocked(in *installation, names []string) ([]*repo, error) {
	var added []*repo
	for _, n := range names {
		if !strings.Contains(n, "/") {
			n = in.Account.Login + "/" + n
		}
		r, err := f.repoLocked(n, true)
		if err != nil {
			return nil, err
		}
		if r.Installation != 0 && r.Installation != in.ID {
			return nil, fmt.Errorf("githubfake: %s belongs to installation %d", n, r.Installation)
		}
		if r.Installation == in.ID {
			continue
		}
		added = append(added, r)
	}
	for _, r := range added {
		r.Installation = in.ID
		in.Repos = append(in.Repos, r)
	}
	return added, nil
}

func shortRepos(rs []*repo) []shortRepoJSON {
	out := []shortRepoJSON{}
	for _, r := range rs {
		out = append(out, shortRepo(r))
	}
	return out
}

// installationHookLocked builds an "installation" webhook with extra top-level fields.
func (f *Fake) installationHookLocked(in *installation, action string, extra map[string]any) outgoing {
	payload := map[string]any{
		"action": action, "installation": f.installationJSON(in),
		"sender": f.userJSON(f.userLocked(Admin, "User")),
	}
	for k, v := range extra {
		payload[k] = v
	}
	return f.outgoingLocked("installation", action, in.ID, 0, payload)
}

func (f *Fake) installationLocked(id int64) (*installation, error) {
	in := f.installs[id]
	if in == nil {
		return nil, fmt.Errorf("githubfake: no installation %d", id)
	}
	return in, nil
}

// RemoveInstallation uninstalls the app (installation.deleted): its tokens stop working and its
// repositories are no longer accessible.
func (f *Fake) RemoveInstallation(id int64) error {
	f.mu.Lock()
	in, err := f.installationLocked(id)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	hook := f.installationHookLocked(in, "deleted", map[string]any{"repositories": shortRepos(in.Repos)})
	for _, r := range in.Repos {
		r.Installation = 0
	}
	delete(f.installs, id)
	f.mu.Unlock()
	f.send([]outgoing{hook})
	return nil
}

// SuspendInstallation suspends (suspended=true, installation.suspend) or unsuspends
// (installation.unsuspend) an installation. A suspended installation's tokens get 403 and no
// new token can be created; no webhooks are sent for its repositories.
func (f *Fake) SuspendInstallation(id int64, suspended bool) error {
	f.mu.Lock()
	in, err := f.installationLocked(id)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	action := "unsuspend"
	if suspended {
		action = "suspend"
		in.SuspendedAt, in.SuspendedBy = f.stampLocked(), f.userLocked(Admin, "User")
	} else {
		in.SuspendedAt, in.SuspendedBy = time.Time{}, nil
	}
	hook := f.installationHookLocked(in, action, map[string]any{"repositories": shortRepos(in.Repos)})
	f.mu.Unlock()
	f.send([]outgoing{hook})
	return nil
}

// AddRepositories adds repositories to an installation (installation_repositories.added).
func (f *Fake) AddRepositories(id int64, repos ...string) error {
	f.mu.Lock()
	in, err := f.installationLocked(id)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	added, err := f.attachLocked(in, repos)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	hook := f.installationReposHookLocked(in, "added", added, nil)
	f.mu.Unlock()
	f.send([]outgoing{hook})
	return nil
}

// RemoveRepositories removes repositories from an installation
// (installation_repositories.removed); tokens of the installation lose access to them.
func (f *Fake) RemoveRepositories(id int64, repos ...string) error {
	f.mu.Lock()
	in, err := f.installationLocked(id)
	if err != nil {
		f.mu.Unlock()
		return err
	}
	var removed []*repo
	for _, n := range repos {
		r := in.repoNamed(n)
		if r == nil {
			f.mu.Unlock()
			return fmt.Errorf("githubfake: %s is not in installation %d", n, id)
		}
		removed = append(removed, r)
	}
	for _, r := range removed {
		r.Installation = 0
		for i, x := range in.Repos {
			if x == r {
				in.Repos = append(in.Repos[:i], in.Repos[i+1:]...)
				break
			}
		}
	}
	hook := f.installationReposHookLocked(in, "removed", nil, removed)
	f.mu.Unlock()
	f.send([]outgoing{hook})
	return nil
}

func (f *Fake) installationReposHookLocked(in *installation, action string, added, removed []*repo) outgoing {
	payload := map[string]any{
		"action": action, "installation": f.installationJSON(in), "repository_selection": "selected",
		"repositories_added": shortRepos(added), "repositories_removed": shortRepos(removed),
		"requester": nil, "sender": f.userJSON(f.userLocked(Admin, "User")),
	}
	return f.outgoingLocked("installation_repositories", action, in.ID, 0, payload)
}

// Installations returns snapshots of every installation, by id.
func (f *Fake) Installations() []Installation {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Installation
	for _, in := range f.sortedInstallsLocked() {
		out = append(out, f.snapshotInstallation(in))
	}
	return out
}

// Repo returns a snapshot of the repository "owner/name".
func (f *Fake) Repo(fullName string) (Repo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.repoLocked(fullName, false)
	if err != nil {
		return Repo{}, err
	}
	return snapshotRepo(r), nil
}

func (f *Fake) sortedInstallsLocked() []*installation {
	out := make([]*installation, 0, len(f.installs))
	for _, in := range f.installs {
		out = append(out, in)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (f *Fake) listInstallations(c *call) reply {
	all := f.sortedInstallsLocked()
	rep := reply{status: http.StatusOK}
	lo, hi := f.paginate(c, len(all), &rep)
	out := []*installationJSON{}
	for _, in := range all[lo:hi] {
		out = append(out, f.installationJSON(in))
	}
	rep.body = out
	return rep
}

func (f *Fake) getInstallation(c *call) reply {
	id, bad := pathInt(c, "id")
	if bad != nil {
		return *bad
	}
	in := f.installs[id]
	if in == nil {
		return fail(http.StatusNotFound, msgNotFound)
	}
	return ok(f.installationJSON(in))
}

// visibleRepos are the installation's repositories the call's token can access.
func (c *call) visibleRepos() []*repo {
	var out []*repo
	for _, r := range c.inst.Repos {
		if c.tok.canSee(r) {
			out = append(out, r)
		}
	}
	return out
}

func (f *Fake) listInstallationRepos(c *call) reply {
	rs := c.visibleRepos()
	rep := reply{status: http.StatusOK}
	lo, hi := f.paginate(c, len(rs), &rep)
	out := []*repoJSON{}
	for _, r := range rs[lo:hi] {
		out = append(out, f.repoJSON(r))
	}
	rep.body = struct {
		TotalCount          int         `json:"total_count"`
		RepositorySelection string      `json:"repository_selection"`
		Repositories        []*repoJSON `json:"repositories"`
	}{len(rs), "selected", out}
	return rep
}

// repo resolves {owner}/{repo} for the call: 404 unless the token can access it.
func (f *Fake) repo(c *call) (*repo, *reply) {
	r := f.repos[strings.ToLower(c.r.PathValue("owner")+"/"+c.r.PathValue("repo"))]
	if r == nil || r.Installation != c.inst.ID || !c.tok.canSee(r) {
		rep := fail(http.StatusNotFound, msgNotFound)
		return nil, &rep
	}
	if bad := c.need("metadata", "read"); bad != nil {
		return nil, bad
	}
	return r, nil
}

func (f *Fake) getRepo(c *call) reply {
	r, bad := f.repo(c)
	if bad != nil {
		return *bad
	}
	return ok(f.repoJSON(r))
}
