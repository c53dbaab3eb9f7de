package event

import (
	"fmt"
	"strconv"
)

// Tenant is the unit of ordering: events of one tenant are handled one at a time in stored order.
//
// A repository tenant has both ids set. An installation-level tenant (installation,
// installation_repositories, ... events) has RepositoryID 0. The zero Tenant is the global tenant
// for events that belong to no installation (ping, for example).
type Tenant struct {
	InstallationID int64  `json:"installation_id,omitempty"`
	RepositoryID   int64  `json:"repository_id,omitempty"`
	Owner          string `json:"owner,omitempty"` // account login of the installation or repository owner
	Name           string `json:"name,omitempty"`  // repository name; empty for installation-level tenants
}

// IsRepository reports whether the tenant is one repository.
func (t Tenant) IsRepository() bool { return t.RepositoryID != 0 }

// FullName is "owner/name" for a repository, "owner" for an installation, "" for the global tenant.
func (t Tenant) FullName() string {
	if t.Name == "" {
		return t.Owner
	}
	return t.Owner + "/" + t.Name
}

// Key is the tenant's identity by numeric ids, "<installation>.<repository>" with NoID ("_") for
// a missing part. It is stable across renames and is the form used in subjects and KV keys.
func (t Tenant) Key() string { return idToken(t.InstallationID) + "." + idToken(t.RepositoryID) }

// String is for logs: the full name when known, else the key.
func (t Tenant) String() string {
	if n := t.FullName(); n != "" {
		return n
	}
	return t.Key()
}

// NoID is the subject token used where an id is absent.
const NoID = "_"

func idToken(id int64) string {
	if id == 0 {
		return NoID
	}
	return strconv.FormatInt(id, 10)
}

func parseIDToken(s string) (int64, error) {
	if s == NoID {
		return 0, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("invalid id token %q", s)
	}
	return id, nil
}
