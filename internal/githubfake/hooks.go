package githubfake

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DeliveryRetention is how long deliveries stay in the log and can be redelivered, like GitHub.
const DeliveryRetention = 3 * 24 * time.Hour

// hookConfig is the app's webhook configuration.
type hookConfig struct {
	URL         string
	ContentType string // "json" or "form"
	Secret      string
	InsecureSSL string
}

type hookConfigJSON struct {
	ContentType string  `json:"content_type"`
	InsecureSSL string  `json:"insecure_ssl"`
	URL         string  `json:"url"`
	Secret      *string `json:"secret,omitempty"`
}

func (f *Fake) hookConfigJSON() hookConfigJSON {
	out := hookConfigJSON{ContentType: f.hook.ContentType, InsecureSSL: f.hook.InsecureSSL, URL: f.hook.URL}
	if f.hook.Secret != "" {
		masked := "********"
		out.Secret = &masked
	}
	return out
}

func (f *Fake) getHookConfig(c *call) reply { return ok(f.hookConfigJSON()) }

func (f *Fake) patchHookConfig(c *call) reply {
	var req struct {
		URL         *string     `json:"url"`
		ContentType *string     `json:"content_type"`
		Secret      *string     `json:"secret"`
		InsecureSSL json.Number `json:"insecure_ssl"`
	}
	if bad := decodeBody(c, &req); bad != nil {
		return *bad
	}
	if req.ContentType != nil && *req.ContentType != "json" && *req.ContentType != "form" {
		return invalid("Hook", "content_type", "invalid")
	}
	if req.URL != nil {
		f.hook.URL = *req.URL
	}
	if req.ContentType != nil {
		f.hook.ContentType = *req.ContentType
	}
	if req.Secret != nil {
		f.hook.Secret = *req.Secret
	}
	if req.InsecureSSL != "" {
		f.hook.InsecureSSL = req.InsecureSSL.String()
	}
	return ok(f.hookConfigJSON())
}

type deliveryJSON struct {
	ID             int64            `json:"id"`
	GUID           string           `json:"guid"`
	DeliveredAt    string           `json:"delivered_at"`
	Redelivery     bool             `json:"redelivery"`
	Duration       float64          `json:"duration"`
	Status         string           `json:"status"`
	StatusCode     int              `json:"status_code"`
	Event          string           `json:"event"`
	Action         *string          `json:"action"`
	InstallationID *int64           `json:"installation_id"`
	RepositoryID   *int64           `json:"repository_id"`
	ThrottledAt    *string          `json:"throttled_at"`
	URL            string           `json:"url,omitempty"`
	Request        *hookMessageJSON `json:"request,omitempty"`
	Response       *hookMessageJSON `json:"response,omitempty"`
}

type hookMessageJSON struct {
	Headers map[string]string `json:"headers"`
	Payload any               `json:"payload"`
}

func deliveryToJSON(d *delivery) deliveryJSON {
	out := deliveryJSON{
		ID: d.ID, GUID: d.GUID, DeliveredAt: ghTime(d.DeliveredAt), Redelivery: d.Redelivery,
		Duration: d.Duration.Seconds(), Status: d.Status, StatusCode: d.StatusCode, Event: d.Event,
	}
	if d.Action != "" {
		a := d.Action
		out.Action = &a
	}
	if d.InstallationID != 0 {
		id := d.InstallationID
		out.InstallationID = &id
	}
	if d.RepositoryID != 0 {
		id := d.RepositoryID
		out.RepositoryID = &id
	}
	return out
}

// retainedLocked are the deliveries still in the log, newest first.
func (f *Fake) retainedLocked(now time.Time) []*delivery {
	var out []*delivery
	for i := len(f.deliveries) - 1; i >= 0; i-- {
		d := f.deliveries[i]
		if now.Sub(d.DeliveredAt) <= DeliveryRetention {
			out = append(out, d)
		}
	}
	return out
}

// listDeliveries serves GitHub's cursor pagination: newest first, per_page (default 30, max
// 100), and a Link rel="next" with an opaque cursor while older deliveries remain.
func (f *Fake) listDeliveries(c *call) reply {
	q := c.r.URL.Query()
	per, _ := strconv.Atoi(q.Get("per_page"))
	if per <= 0 {
		per = 30
	}
	per = min(per, 100)
	all := f.retainedLocked(c.now)
	start := 0
	if cur := q.Get("cursor"); cur != "" {
		id, err := strconv.ParseInt(strings.TrimPrefix(cur, "v1_"), 10, 64)
		if err != nil || !strings.HasPrefix(cur, "v1_") {
			return invalid("Delivery", "cursor", "invalid")
		}
		start = len(all)
		for i, d := range all {
			if d.ID < id {
				start = i
				break
			}
		}
	}
	end := min(start+per, len(all))
	rep := reply{status: http.StatusOK}
	out := []deliveryJSON{}
	for _, d := range all[start:end] {
		out = append(out, deliveryToJSON(d))
	}
	if end < len(all) && end > start {
		rep.header = http.Header{}
		rep.header.Set("Link", f.cursorLink(c, "v1_"+strconv.FormatInt(all[end-1].ID, 10), "next"))
	}
	rep.body = out
	return rep
}

func (f *Fake) deliveryLocked(c *call) (*delivery, *reply) {
	id, bad := pathInt(c, "id")
	if bad != nil {
		return nil, bad
	}
	for _, d := range f.retainedLocked(c.now) {
		if d.ID == id {
			return d, nil
		}
	}
	rep := fail(http.StatusNotFound, msgNotFound)
	return nil, &rep
}

func (f *Fake) getDelivery(c *call) reply {
	d, bad := f.deliveryLocked(c)
	if bad != nil {
		return *bad
	}
	out := deliveryToJSON(d)
	out.URL = f.hook.URL
	out.Request = &hookMessageJSON{Headers: cloneHeaders(d.reqHeaders), Payload: json.RawMessage(d.Payload)}
	out.Response = &hookMessageJSON{Headers: cloneHeaders(d.respHeaders), Payload: d.respBody}
	if out.Response.Headers == nil {
		out.Response.Headers = map[string]string{}
	}
	return ok(out)
}

// redeliver resends a delivery with its GUID and payload; the attempt is recorded as a new
// delivery with redelivery=true. 202 like GitHub (go-github returns *github.AcceptedError).
func (f *Fake) redeliver(c *call) reply {
	d, bad := f.deliveryLocked(c)
	if bad != nil {
		return *bad
	}
	h := outgoing{
		event: d.Event, action: d.Action, installationID: d.InstallationID, repositoryID: d.RepositoryID,
		payload: d.Payload, guid: d.GUID, redelivery: true,
	}
	return reply{status: http.StatusAccepted, body: struct{}{}, hooks: []outgoing{h}}
}

// Redeliver resends delivery id like POST /app/hook/deliveries/{id}/attempts, for user actions
// ("Redeliver" clicked in the app's settings).
func (f *Fake) Redeliver(id int64) bool {
	f.mu.Lock()
	var h *outgoing
	for _, d := range f.retainedLocked(f.nowLocked()) {
		if d.ID == id {
			h = &outgoing{
				event: d.Event, action: d.Action, installationID: d.InstallationID,
				repositoryID: d.RepositoryID, payload: d.Payload, guid: d.GUID, redelivery: true,
			}
		}
	}
	f.mu.Unlock()
	if h == nil {
		return false
	}
	f.send([]outgoing{*h})
	return true
}
