package event

import (
	"fmt"
	"strings"
)

// Subject scheme. Ingest publishes every delivery to
//
//	hookd.in.<installation>.<repository>.<event>.<delivery>
//
// with NoID ("_") for an absent id. The events stream listens on hookd.in.> and rewrites each
// subject on the way in (a stream subject transform) to
//
//	hookd.events.<partition>.<installation>.<repository>.<event>.<delivery>
//
// where partition = hash(installation, repository) mod the configured partition count, so that one
// tenant always lands in one partition. Numeric ids, never names: names may contain dots. The
// delivery id as the last token makes every delivery its own subject, which the stream limits to
// one message (discard new per subject): that is how a delivery is stored at most once for as long
// as the stream keeps it.
const (
	InPrefix     = "hookd.in"
	EventsPrefix = "hookd.events"
	DLQPrefix    = "hookd.dlq"
)

// InSubject is the subject ingest publishes a delivery to.
func InSubject(t Tenant, eventName, delivery string) string {
	return InPrefix + "." + t.Key() + "." + eventName + "." + delivery
}

// StoredSubject is the parsed form of a subject as stored in the events stream.
type StoredSubject struct {
	Partition      int
	InstallationID int64
	RepositoryID   int64
	Event          string
	Delivery       string
}

// ParseStoredSubject parses hookd.events.<partition>.<installation>.<repository>.<event>.<delivery>.
func ParseStoredSubject(subj string) (StoredSubject, error) {
	rest, ok := strings.CutPrefix(subj, EventsPrefix+".")
	if !ok {
		return StoredSubject{}, fmt.Errorf("subject %q: want prefix %s", subj, EventsPrefix)
	}
	tok := strings.Split(rest, ".")
	if len(tok) != 5 {
		return StoredSubject{}, fmt.Errorf("subject %q: want %s.<partition>.<installation>.<repository>.<event>.<delivery>", subj, EventsPrefix)
	}
	var s StoredSubject
	if _, err := fmt.Sscanf(tok[0], "%d", &s.Partition); err != nil {
		return StoredSubject{}, fmt.Errorf("subject %q: bad partition: %w", subj, err)
	}
	var err error
	if s.InstallationID, err = parseIDToken(tok[1]); err != nil {
		return StoredSubject{}, fmt.Errorf("subject %q: installation: %w", subj, err)
	}
	if s.RepositoryID, err = parseIDToken(tok[2]); err != nil {
		return StoredSubject{}, fmt.Errorf("subject %q: repository: %w", subj, err)
	}
	s.Event, s.Delivery = tok[3], tok[4]
	return s, nil
}

// PartitionSubject is the filter subject of one partition's consumer.
func PartitionSubject(p int) string { return fmt.Sprintf("%s.%d.>", EventsPrefix, p) }

// PartitionTransform returns the stream subject transform (source, destination) that maps
// hookd.in subjects to partitioned hookd.events subjects over n partitions.
func PartitionTransform(n int) (src, dest string) {
	return InPrefix + ".*.*.*.*",
		fmt.Sprintf("%s.{{partition(%d,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}.{{wildcard(3)}}.{{wildcard(4)}}", EventsPrefix, n)
}

// ValidDeliveryID reports whether id can be a delivery id: GitHub sends GUIDs; hookd accepts
// 1 to 128 characters of letters, digits, '-' and '_' so that the id is one subject token.
func ValidDeliveryID(id string) bool { return validToken(id, 128, true) }

// ValidEventName reports whether name can be a webhook event name: 1 to 64 of a-z, 0-9, '_'.
func ValidEventName(name string) bool { return validToken(name, 64, false) }

func validToken(s string, max int, allowUpperDash bool) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case allowUpperDash && (c >= 'A' && c <= 'Z' || c == '-'):
		default:
			return false
		}
	}
	return true
}
