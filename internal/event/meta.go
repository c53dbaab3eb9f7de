package event

import (
	"encoding/json"
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

// envelope is the part of every webhook payload hookd reads to route it.
type envelope struct {
	Action       string `json:"action"`
	Installation *struct {
		ID      int64 `json:"id"`
		Account *struct {
			Login string `json:"login"`
		} `json:"account"`
	} `json:"installation"`
	Repository *struct {
		ID       int64  `json:"id"`
		FullName string `json:"full_name"`
		Owner    *struct {
			Login string `json:"login"`
		} `json:"owner"`
	} `json:"repository"`
	Sender *struct {
		Login string `json:"login"`
		Type  string `json:"type"`
	} `json:"sender"`
}

// ErrNotJSONObject is returned by ParsePayload for a body that is not a JSON object.
var ErrNotJSONObject = errors.New("payload is not a JSON object")

// ParsePayload fills the payload-derived fields of m (action, installation, repository, owner,
// sender) from a webhook body. It returns an error wrapping ErrNotJSONObject for a body that is
// not a JSON object.
func ParsePayload(m *Meta, body []byte) error {
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return fmt.Errorf("%w: %v", ErrNotJSONObject, err)
	}
	m.Action = env.Action
	if env.Installation != nil {
		m.InstallationID = env.Installation.ID
		if env.Installation.Account != nil {
			m.Owner = env.Installation.Account.Login
		}
	}
	if env.Repository != nil {
		m.RepositoryID = env.Repository.ID
		m.Repository = env.Repository.FullName
		if env.Repository.Owner != nil && m.Owner == "" {
			m.Owner = env.Repository.Owner.Login
		}
	}
	if env.Sender != nil {
		m.Sender, m.SenderType = env.Sender.Login, env.Sender.Type
	}
	return nil
}

// Header encodes m as message headers. Empty and zero fields are left out.
func (m Meta) Header() nats.Header {
	h := nats.Header{}
	set := func(k, v string) {
		if v != "" {
			h.Set(k, v)
		}
	}
	setID := func(k string, v int64) {
		if v != 0 {
			h.Set(k, strconv.FormatInt(v, 10))
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
		h.Set(HeaderReceivedAt, m.ReceivedAt.UTC().Format(time.RFC3339Nano))
	}
	h.Set(HeaderSecretIndex, strconv.Itoa(m.SecretIndex))
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
