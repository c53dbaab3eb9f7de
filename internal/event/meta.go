package event

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
)

// Message headers stored with every delivery in the events stream. The body is the payload exactly
// as GitHub sent it (after form decoding, for form-encoded deliveries).
const (
	HeaderEvent          = "Hookd-Event"
	HeaderAction         = "Hookd-Action"
	HeaderDelivery       = "Hookd-Delivery"
	HeaderHookID         = "Hookd-Hook-Id"
	HeaderInstallationID = "Hookd-Installation-Id"
	HeaderTargetID       = "Hookd-Target-Id"
	HeaderTargetType     = "Hookd-Target-Type"
	HeaderRepositoryID   = "Hookd-Repository-Id"
	HeaderRepository     = "Hookd-Repository" // full name "owner/name"
	HeaderOwner          = "Hookd-Owner"      // installation account or repository owner login
	HeaderSender         = "Hookd-Sender"
	HeaderSenderType     = "Hookd-Sender-Type"
	HeaderReceivedAt     = "Hookd-Received-At" // RFC 3339 with nanoseconds, UTC
	HeaderSecretIndex    = "Hookd-Secret-Index"
	HeaderSource         = "Hookd-Source" // SourceWebhook, SourceReconcile, SourceReplay
)

// Sources of a stored event.
const (
	SourceWebhook   = "webhook"   // a delivery received by ingest
	SourceReconcile = "reconcile" // a synthetic event emitted by the sweep
	SourceReplay    = "replay"    // a dead letter put back into processing
)

// Meta is what hookd knows about a delivery besides its body.
type Meta struct {
	Event          string
	Action         string
	Delivery       string
	HookID         int64
	InstallationID int64
	TargetID       int64
	TargetType     string
	RepositoryID   int64
	Repository     string // full name
	Owner          string
	Sender         string
	SenderType     string
	ReceivedAt     time.Time
	SecretIndex    int // index of the webhook secret that verified the signature; -1 if none
	Source         string
}

// Tenant returns the tenant the event belongs to: the repository when the payload names one, else
// the installation, else the global tenant.
func (m Meta) Tenant() Tenant {
	t := Tenant{InstallationID: m.InstallationID, Owner: m.Owner}
	if m.RepositoryID != 0 {
		t.RepositoryID = m.RepositoryID
		if owner, name, ok := cutFullName(m.Repository); ok {
			t.Owner, t.Name = owner, name
		}
	}
	return t
}

// Subject is the subject ingest publishes this delivery to.
func (m Meta) Subject() string { return InSubject(m.Tenant(), m.Event, m.Delivery) }

func cutFullName(full string) (owner, name string, ok bool) {
	for i := 0; i < len(full); i++ {
		if full[i] == '/' {
			return full[:i], full[i+1:], i > 0 && i < len(full)-1
		}
	}
	return "", "", false
}

// ErrNotJSONObject is returned by ParsePayload for a body that is not a JSON object.
var ErrNotJSONObject = errors.New("payload is not a JSON object")

// ParsePayload fills the payload-derived fields of m (action, installation, repository, owner,
// sender) from a webhook body. It returns an error wrapping ErrNotJSONObject for a body that is
// not a JSON object, or whose routing fields have the wrong type (an installation that is not an
// object, an id that is not an integer, ...). It reads the body once to validate it and skims
// it once more for the routing fields, decoding nothing else.
func ParsePayload(m *Meta, body []byte) error {
	var inst, repo, sender, action []byte
	valid, isObject := validObject(body, func(k, v []byte) {
		switch string(k) {
		case "action":
			action = v
		case "installation":
			inst = v
		case "repository":
			repo = v
		case "sender":
			sender = v
		}
	})
	if !valid {
		return fmt.Errorf("%w: invalid JSON", ErrNotJSONObject)
	}
	if !isObject {
		return ErrNotJSONObject
	}
	var out Meta
	var err error
	if action != nil {
		if out.Action, err = jsonString(action); err != nil {
			return fmt.Errorf("%w: action: %v", ErrNotJSONObject, err)
		}
	}
	err = object(inst, func(k, v []byte) (err error) {
		switch string(k) {
		case "id":
			out.InstallationID, err = jsonInt(v)
		case "account":
			out.Owner, err = loginOf(v)
		}
		return err
	})
	if err == nil && out.InstallationID < 0 {
		err = fmt.Errorf("id %d is negative", out.InstallationID)
	}
	if err != nil {
		return fmt.Errorf("%w: installation: %v", ErrNotJSONObject, err)
	}
	var repoOwner string
	err = object(repo, func(k, v []byte) (err error) {
		switch string(k) {
		case "id":
			out.RepositoryID, err = jsonInt(v)
		case "full_name":
			out.Repository, err = jsonString(v)
		case "owner":
			repoOwner, err = loginOf(v)
		}
		return err
	})
	if err == nil && out.RepositoryID < 0 {
		err = fmt.Errorf("id %d is negative", out.RepositoryID)
	}
	if err != nil {
		return fmt.Errorf("%w: repository: %v", ErrNotJSONObject, err)
	}
	if out.Owner == "" {
		out.Owner = repoOwner
	}
	err = object(sender, func(k, v []byte) (err error) {
		switch string(k) {
		case "login":
			out.Sender, err = jsonString(v)
		case "type":
			out.SenderType, err = jsonString(v)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%w: sender: %v", ErrNotJSONObject, err)
	}
	m.Action, m.InstallationID, m.Owner, m.RepositoryID, m.Repository = out.Action, out.InstallationID, out.Owner, out.RepositoryID, out.Repository
	m.Sender, m.SenderType = out.Sender, out.SenderType
	return nil
}

// Header encodes m as message headers. Empty and zero fields are left out. The keys are
// already canonical, so the map is filled directly (this runs once per delivery on ingest's hot
// path: one map and one backing slice instead of an allocation per header).
func (m Meta) Header() nats.Header {
	h := make(nats.Header, 16)
	vals := make([]string, 0, 16)
	set := func(k, v string) {
		if v != "" {
			vals = append(vals, v)
			h[k] = vals[len(vals)-1 : len(vals) : len(vals)]
		}
	}
	setID := func(k string, v int64) {
		if v != 0 {
			set(k, strconv.FormatInt(v, 10))
		}
	}
	set(HeaderEvent, m.Event)
	set(HeaderAction, m.Action)
	set(HeaderDelivery, m.Delivery)
	setID(HeaderHookID, m.HookID)
	setID(HeaderInstallationID, m.InstallationID)
	setID(HeaderTargetID, m.TargetID)
	set(HeaderTargetType, m.TargetType)
	setID(HeaderRepositoryID, m.RepositoryID)
	set(HeaderRepository, m.Repository)
	set(HeaderOwner, m.Owner)
	set(HeaderSender, m.Sender)
	set(HeaderSenderType, m.SenderType)
	if !m.ReceivedAt.IsZero() {
		set(HeaderReceivedAt, m.ReceivedAt.UTC().Format(time.RFC3339Nano))
	}
	set(HeaderSecretIndex, strconv.Itoa(m.SecretIndex))
	set(HeaderSource, m.Source)
	return h
}

// MetaFromHeader decodes the headers written by Header. Event and delivery are required.
func MetaFromHeader(h nats.Header) (Meta, error) {
	m := Meta{
		Event:       h.Get(HeaderEvent),
		Action:      h.Get(HeaderAction),
		Delivery:    h.Get(HeaderDelivery),
		TargetType:  h.Get(HeaderTargetType),
		Repository:  h.Get(HeaderRepository),
		Owner:       h.Get(HeaderOwner),
		Sender:      h.Get(HeaderSender),
		SenderType:  h.Get(HeaderSenderType),
		Source:      h.Get(HeaderSource),
		SecretIndex: -1,
	}
	if m.Event == "" || m.Delivery == "" {
		return Meta{}, fmt.Errorf("message lacks %s or %s header: not written by hookd ingest", HeaderEvent, HeaderDelivery)
	}
	var err error
	for _, f := range []struct {
		key string
		dst *int64
	}{
		{HeaderHookID, &m.HookID}, {HeaderInstallationID, &m.InstallationID},
		{HeaderTargetID, &m.TargetID}, {HeaderRepositoryID, &m.RepositoryID},
	} {
		if v := h.Get(f.key); v != "" {
			if *f.dst, err = strconv.ParseInt(v, 10, 64); err != nil {
				return Meta{}, fmt.Errorf("header %s=%q: %w", f.key, v, err)
			}
		}
	}
	if v := h.Get(HeaderReceivedAt); v != "" {
		if m.ReceivedAt, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return Meta{}, fmt.Errorf("header %s=%q: %w", HeaderReceivedAt, v, err)
		}
	}
	if v := h.Get(HeaderSecretIndex); v != "" {
		if m.SecretIndex, err = strconv.Atoi(v); err != nil {
			return Meta{}, fmt.Errorf("header %s=%q: %w", HeaderSecretIndex, v, err)
		}
	}
	return m, nil
}
