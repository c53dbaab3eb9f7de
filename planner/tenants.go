package planner

import (
	"cmp"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/hookd/hookd/internal/event"
)

// Installation is what the planner needs to know about one GitHub App installation.
type Installation struct {
	ID           int64
	Account      string // the account login the app is installed on
	Suspended    bool
	Repositories []Repository
}

// Repository is one repository an installation can access.
type Repository struct {
	ID    int64
	Owner string // empty: the installation's account
	Name  string
}

// Selection is the `tenants:` configuration section: which accounts and repositories hookd
// serves. Patterns are "owner" (an account and all its repositories) or "owner/name" (one
// repository), compared case-insensitively; '*' matches any run of characters within one part
// ("acme-*", "acme/*", "*"), as in path.Match.
//
// A repository is served when it is allowed (Allow is empty, or a pattern names it or its
// owner) and not denied (no Deny pattern names it or its owner). An installation is served when
// it is not suspended, its account is not denied, and Allow is empty, names the account, or
// allows one of its repositories. Deny wins over Allow.
type Selection struct {
	// Allow lists the accounts and repositories to serve. Default: empty, everything installed.
	Allow []string `yaml:"allow"`
	// Deny lists accounts and repositories never served. Default: empty.
	Deny []string `yaml:"deny"`
}

// Validate reports malformed patterns, naming each as tenants.allow[i] or tenants.deny[i].
func (s Selection) Validate() error {
	var errs []error
	check := func(key string, list []string) {
		for i, p := range list {
			if err := checkPattern(p); err != nil {
				errs = append(errs, fmt.Errorf("tenants.%s[%d]: %w", key, i, err))
			}
		}
	}
	check("allow", s.Allow)
	check("deny", s.Deny)
	return errors.Join(errs...)
}

func checkPattern(p string) error {
	parts := strings.Split(p, "/")
	if len(parts) > 2 {
		return fmt.Errorf("pattern %q has more than one '/'; write \"owner\" or \"owner/name\"", p)
	}
	for _, part := range parts {
		if part == "" {
			return fmt.Errorf("pattern %q has an empty part; write \"owner\" or \"owner/name\" ('*' for any)", p)
		}
		if _, err := path.Match(part, ""); err != nil {
			return fmt.Errorf("pattern %q: %w", p, err)
		}
	}
	return nil
}

// Tenants is the tenant set a plan is made for, sorted by name.
type Tenants struct {
	// Installations are installation-level tenants (InstallationID and Owner set).
	Installations []event.Tenant
	// Repositories are repository tenants (every field set).
	Repositories []event.Tenant
}

// Exclusion is a tenant left out of the plan and why.
type Exclusion struct {
	Tenant event.Tenant
	Reason string
}

// SelectTenants maps installations and the Selection to the served tenant set, and lists what
// it left out with the reason: suspended installations, denied accounts, installations not
// allowed (their repositories go with them and are not listed), and the denied or not allowed
// repositories of served installations. It is pure. It fails on malformed patterns and on
// installations or repositories without an id or a name.
func SelectTenants(installs []Installation, sel Selection) (Tenants, []Exclusion, error) {
	if err := sel.Validate(); err != nil {
		return Tenants{}, nil, err
	}
	var (
		out  Tenants
		excl []Exclusion
		errs []error
	)
	for i, in := range installs {
		if in.ID <= 0 || in.Account == "" {
			errs = append(errs, fmt.Errorf("planner: installation[%d]: id (%d) and account (%q) are required", i, in.ID, in.Account))
			continue
		}
		inst := event.Tenant{InstallationID: in.ID, Owner: in.Account}
		if in.Suspended {
			excl = append(excl, Exclusion{Tenant: inst, Reason: "installation suspended"})
			continue
		}
		if p, ok := matchAny(sel.Deny, in.Account, ""); ok {
			excl = append(excl, Exclusion{Tenant: inst, Reason: fmt.Sprintf("account denied by tenants.deny %q", p)})
			continue
		}
		_, accountAllowed := matchAny(sel.Allow, in.Account, "")
		accountAllowed = accountAllowed || len(sel.Allow) == 0
		var (
			repos    []event.Tenant
			repoExcl []Exclusion // reported only when the installation is served
		)
		for j, r := range in.Repositories {
			owner := cmp.Or(r.Owner, in.Account)
			if r.ID <= 0 || r.Name == "" {
				errs = append(errs, fmt.Errorf("planner: installation %s repository[%d]: id (%d) and name (%q) are required", in.Account, j, r.ID, r.Name))
				continue
			}
			rt := event.Tenant{InstallationID: in.ID, RepositoryID: r.ID, Owner: owner, Name: r.Name}
			if p, ok := matchAny(sel.Deny, owner, r.Name); ok {
				repoExcl = append(repoExcl, Exclusion{Tenant: rt, Reason: fmt.Sprintf("denied by tenants.deny %q", p)})
				continue
			}
			if _, ok := matchAny(sel.Allow, owner, r.Name); !ok && len(sel.Allow) > 0 {
				repoExcl = append(repoExcl, Exclusion{Tenant: rt, Reason: "not in tenants.allow"})
				continue
			}
			repos = append(repos, rt)
		}
		if !accountAllowed && len(repos) == 0 {
			excl = append(excl, Exclusion{Tenant: inst, Reason: "not in tenants.allow"})
			continue
		}
		excl = append(excl, repoExcl...)
		out.Installations = append(out.Installations, inst)
		out.Repositories = append(out.Repositories, repos...)
	}
	if len(errs) > 0 {
		return Tenants{}, nil, errors.Join(errs...)
	}
	byName := func(a, b event.Tenant) int {
		return cmp.Or(cmp.Compare(a.FullName(), b.FullName()), cmp.Compare(a.RepositoryID, b.RepositoryID))
	}
	slices.SortFunc(out.Installations, byName)
	slices.SortFunc(out.Repositories, byName)
	slices.SortFunc(excl, func(a, b Exclusion) int { return byName(a.Tenant, b.Tenant) })
	return out, excl, nil
}

// matchAny returns the first pattern naming the account (name == "") or the repository
// owner/name, and whether there was one. Patterns are valid (checked by Validate).
func matchAny(patterns []string, owner, name string) (string, bool) {
	owner, name = strings.ToLower(owner), strings.ToLower(name)
	for _, p := range patterns {
		lp := strings.ToLower(p)
		po, pn, isRepo := strings.Cut(lp, "/")
		if ok, _ := path.Match(po, owner); !ok {
			continue
		}
		if !isRepo {
			return p, true
		}
		if name == "" {
			continue // a repository pattern never names an account
		}
		if ok, _ := path.Match(pn, name); ok {
			return p, true
		}
	}
	return "", false
}
