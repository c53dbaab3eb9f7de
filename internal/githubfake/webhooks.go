package githubfake

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// HookshotUserAgent is the User-Agent of webhook deliveries.
const HookshotUserAgent = "GitHub-Hookshot/f4k3d00"

// Delivery statuses recorded for failed deliveries, as GitHub shows them.
const (
	StatusOK            = "OK"
	StatusTimedOut      = "timed out"
	StatusFailedConnect = "failed to connect to host"
)

// outgoing is a webhook to send.
type outgoing struct {
	skip           bool // not delivered: event not subscribed or installation suspended
	event, action  string
	installationID int64
	repositoryID   int64
	payload        []byte // the JSON payload
	guid           string // set for redeliveries; new deliveries get a fresh one
	redelivery     bool
}

// outgoingLocked builds a webhook, deciding now (with the state it describes) whether GitHub
// would send it at all.
func (f *Fake) outgoingLocked(event, action string, installationID, repoID int64, payload any) outgoing {
	b, err := json.Marshal(payload)
	if err != nil {
		panic(fmt.Sprintf("githubfake: marshal %s payload: %v", event, err)) // our own types; a bug
	}
	o := outgoing{event: event, action: action, installationID: installationID, repositoryID: repoID, payload: b}
	always := event == "installation" || event == "installation_repositories"
	if !always {
		in := f.installs[installationID]
		o.skip = in == nil || !in.SuspendedAt.IsZero() || !slices.Contains(f.opts.Events, event)
	}
	return o
}

// delivery is one attempt to deliver a webhook, as the delivery log records it.
type delivery struct {
	Delivery
	reqHeaders  map[string]string
	respHeaders map[string]string
	respBody    string
}

// Delivery is a snapshot of one delivery attempt in the app's delivery log.
type Delivery struct {
	ID             int64
	GUID           string
	DeliveredAt    time.Time
	Redelivery     bool
	Duration       time.Duration
	Status         string // "OK", "Invalid HTTP Response: 503", "timed out", "failed to connect to host"
	StatusCode     int    // 0 when no response
	Event          string
	Action         string
	InstallationID int64
	RepositoryID   int64
	Payload        []byte // the JSON payload (also for form-encoded deliveries)
}

// OK reports whether the delivery got a 2xx response.
func (d Delivery) OK() bool { return d.Status == StatusOK }

// Deliveries returns the delivery log, oldest first.
func (f *Fake) Deliveries() []Delivery {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Delivery, 0, len(f.deliveries))
	for _, d := range f.deliveries {
		out = append(out, d.Delivery)
	}
	return out
}

// SetWebhookURL sets the app's webhook URL (empty: inactive).
func (f *Fake) SetWebhookURL(u string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.hook.URL = u
}

// SetWebhookOutage starts (true) or ends (false) an outage between GitHub and the webhook URL:
// while on, deliveries never reach it and are recorded as "failed to connect to host".
func (f *Fake) SetWebhookOutage(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.outage = on
}

// SetWebhookDelay waits d (real time) before each delivery attempt. Zero: no delay.
func (f *Fake) SetWebhookDelay(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay = d
}

// Flush waits until every queued asynchronous delivery has been attempted. With synchronous
// delivery (the default) it returns at once.
func (f *Fake) Flush() { f.wg.Wait() }

// send delivers hooks in order: synchronously, or queued for the async sender.
func (f *Fake) send(hooks []outgoing) {
	for _, h := range hooks {
		if h.skip {
			continue
		}
		if f.async != nil {
			f.wg.Add(1)
			f.async <- h
			continue
		}
		f.deliver(h)
	}
}

func (f *Fake) sendLoop() {
	defer close(f.done)
	for h := range f.async {
		f.deliver(h)
		f.wg.Done()
	}
}

// deliver makes one delivery attempt and records it. It must not be called with f.mu held.
func (f *Fake) deliver(h outgoing) {
	f.mu.Lock()
	cfg, outage, delay, now := f.hook, f.outage, f.delay, f.nowLocked()
	f.mu.Unlock()
	if cfg.URL == "" {
		return
	}
	if h.guid == "" {
		h.guid = newUUID()
	}
	body, contentType := h.payload, "application/json"
	if cfg.ContentType == "form" {
		body = []byte("payload=" + url.QueryEscape(string(h.payload)))
		contentType = "application/x-www-form-urlencoded"
	}
	hdr := map[string]string{
		"Accept":                                 "*/*",
		"Content-Type":                           contentType,
		"User-Agent":                             HookshotUserAgent,
		"X-GitHub-Delivery":                      h.guid,
		"X-GitHub-Event":                         h.event,
		"X-GitHub-Hook-ID":                       strconv.FormatInt(f.opts.HookID, 10),
		"X-GitHub-Hook-Installation-Target-ID":   strconv.FormatInt(f.opts.AppID, 10),
		"X-GitHub-Hook-Installation-Target-Type": "integration",
	}
	if cfg.Secret != "" {
		hdr["X-Hub-Signature"] = "sha1=" + Sign(sha1.New, cfg.Secret, body)
		hdr["X-Hub-Signature-256"] = "sha256=" + Sign(sha256.New, cfg.Secret, body)
	}
	d := &delivery{Delivery: Delivery{
		GUID: h.guid, DeliveredAt: now, Redelivery: h.redelivery, Event: h.event, Action: h.action,
		InstallationID: h.installationID, RepositoryID: h.repositoryID, Payload: h.payload,
	}, reqHeaders: hdr}
	if delay > 0 {
		time.Sleep(delay)
	}
	if outage {
		d.Status = StatusFailedConnect
	} else {
		f.post(cfg.URL, body, d)
	}
	f.mu.Lock()
	d.ID = f.newIDLocked()
	f.deliveries = append(f.deliveries, d)
	f.mu.Unlock()
}

func (f *Fake) post(target string, body []byte, d *delivery) {
	ctx, cancel := context.WithTimeout(context.Background(), f.opts.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		d.Status = StatusFailedConnect
		return
	}
	for k, v := range d.reqHeaders {
		req.Header.Set(k, v)
	}
	start := time.Now()
	resp, err := f.opts.WebhookClient.Do(req)
	d.Duration = time.Since(start)
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
			d.Status = StatusTimedOut
		} else {
			d.Status = StatusFailedConnect
		}
		return
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	d.StatusCode = resp.StatusCode
	d.respBody = string(b)
	d.respHeaders = map[string]string{}
	for k := range resp.Header {
		d.respHeaders[strings.ToLower(k)] = resp.Header.Get(k)
	}
	if resp.StatusCode/100 == 2 {
		d.Status = StatusOK
	} else {
		d.Status = fmt.Sprintf("Invalid HTTP Response: %d", resp.StatusCode)
	}
}

// Sign returns the hex HMAC of body with secret and the hash h (sha256.New for
// X-Hub-Signature-256, sha1 for X-Hub-Signature), without the "sha256=" prefix.
func Sign(newHash func() hash.Hash, secret string, body []byte) string {
	m := hmac.New(newHash, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func cloneHeaders(m map[string]string) map[string]string { return maps.Clone(m) }
