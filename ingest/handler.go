package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
)

// webhook is the http.Handler of the webhook route.
type webhook struct {
	cfg     Config
	secrets [][]byte
	js      jetstream.JetStream
	nc      *nats.Conn // for a fast "not connected" answer; may be nil
	log     zerolog.Logger
	m       *metrics

	// async publishes with PublishMsgAsync and waits on the ack future instead of PublishMsg.
	// Off: BenchmarkIngest measured no gain (CPU per delivery equal within noise on a 2-core machine), and an abandoned future
	// keeps the body alive until the ack or a reconnect. Tests and benchmarks switch it.
	async atomic.Bool

	reqPrefix string // per-process prefix of generated request ids
	reqSeq    atomic.Uint64
	bufs      sync.Pool // *[]byte body buffers

	started    atomic.Pointer[func()]                // test hook: called once a request is being handled
	publishing atomic.Pointer[func(context.Context)] // test hook: called with the request's context before the publish
}

// Pooled buffers above this capacity are left to the garbage collector rather than kept.
const maxPooledBuf = 1 << 20

// outcome of one request, for the answer, the log line and the metrics.
type outcome struct {
	meta      event.Meta
	duplicate bool
	size      int
	err       error
}

func (h *webhook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	h.m.inFlight.Inc()
	defer h.m.inFlight.Dec()
	if f := h.started.Load(); f != nil {
		(*f)()
	}
	reqID := requestID(r.Header)
	if reqID == "" {
		reqID = h.reqPrefix + strconv.FormatUint(h.reqSeq.Add(1), 36)
	}
	w.Header().Set(HeaderRequestID, reqID)

	o := outcome{meta: event.Meta{SecretIndex: -1}}
	o.err = h.handle(w, r, start, &o)

	var status int
	var label, msg string
	if o.err == nil {
		status, label = http.StatusAccepted, OutcomeStored
		switch {
		case o.duplicate:
			status, label = http.StatusOK, OutcomeDuplicate
		case o.meta.Event == pingEvent:
			status, label = http.StatusOK, OutcomePing
		}
		writeStored(w, status, o.meta.Delivery, o.duplicate, o.meta.Event == pingEvent)
	} else {
		status, label, msg = errorResponse(o.err)
		h.writeError(w, status, msg)
	}
	d := time.Since(start)
	h.m.deliveries.WithLabelValues(eventLabel(o.meta.Event), label).Inc()
	h.m.requestDuration.WithLabelValues(label).Observe(d.Seconds())

	var le *zerolog.Event
	switch {
	case status >= 500:
		le = h.log.Error().Err(o.err)
	case status >= 400:
		le = h.log.Warn().Err(o.err)
	default:
		le = h.log.Info()
	}
	if le == nil { // level disabled
		return
	}
	le = le.Str("request_id", reqID).Str("outcome", label).Int("status", status).Dur("duration", d)
	if o.meta.Delivery != "" {
		le = le.Str("delivery", o.meta.Delivery).Str("event", o.meta.Event)
	}
	if o.meta.Action != "" {
		le = le.Str("action", o.meta.Action)
	}
	if o.meta.SecretIndex >= 0 {
		le = le.Str("tenant", o.meta.Tenant().String()).Int("secret_index", o.meta.SecretIndex)
	}
	le.Int("bytes", o.size).Str("remote", r.RemoteAddr).Msg("webhook")
}

// handle does the work of one request and fills o; a nil error means stored (or already stored).
func (h *webhook) handle(w http.ResponseWriter, r *http.Request, start time.Time, o *outcome) error {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return ErrMethodNotAllowed
	}
	if len(h.secrets) == 0 {
		return ErrNoSecret
	}
	if err := parseHeaders(r.Header, &o.meta); err != nil {
		return err
	}
	sig, err := signatureHeader(r.Header)
	if err != nil {
		return err
	}
	limit := h.cfg.MaxBodyBytes
	if r.ContentLength > limit {
		w.Header().Set("Connection", "close") // do not read what we refuse
		return &wrapped{sentinel: ErrTooLarge, msg: "body of " + strconv.FormatInt(r.ContentLength, 10) + " bytes is over http.max_body_bytes (" + strconv.FormatInt(limit, 10) + ")"}
	}
	// A client that goes away once its body is sent (a proxy giving up, a half-close) cancels
	// r.Context(); a verified delivery is stored all the same, within HandlerTimeout, instead
	// of its fate depending on when the publish saw the cancellation.
	ctx, cancel := context.WithDeadline(context.WithoutCancel(r.Context()), start.Add(h.cfg.HandlerTimeout))
	defer cancel()

	// Serve's http.Server bounds the whole request by ReadTimeout from its first byte; a deadline
	// set here would count from now, after the headers, and extend it. On any other server
	// (httptest included) the handler sets the deadline itself.
	if r.Context().Value(servedKey{}) == nil {
		_ = http.NewResponseController(w).SetReadDeadline(start.Add(h.cfg.ReadTimeout))
	}
	bp := h.getBuf(r.ContentLength)
	body, err := readBody(http.MaxBytesReader(w, r.Body, limit), *bp)
	*bp = body
	o.size = len(body)
	h.m.bodyBytes.Observe(float64(len(body)))
	release := true
	defer func() {
		if release {
			h.putBuf(bp)
		}
	}()
	if err != nil {
		var tooLarge *http.MaxBytesError
		var ne net.Error
		switch {
		case errors.As(err, &tooLarge):
			return &wrapped{sentinel: ErrTooLarge, msg: "body is over http.max_body_bytes (" + strconv.FormatInt(limit, 10) + ")"}
		case errors.As(err, &ne) && ne.Timeout():
			return &wrapped{sentinel: ErrBodyTimeout, msg: ErrBodyTimeout.Error(), cause: err}
		default:
			return &wrapped{sentinel: ErrBadRequest, msg: "reading request body", cause: err}
		}
	}

	if o.meta.SecretIndex, err = VerifySignature(h.secrets, body, sig); err != nil {
		return err
	}
	payload := body
	if isForm(r.Header.Get("Content-Type")) {
		if payload, err = decodeForm(body); err != nil {
			return err
		}
	}
	if !startsObject(payload) {
		return badRequest("body is not a JSON object (Content-Type %q)", clip(r.Header.Get("Content-Type")))
	}
	if err := event.ParsePayload(&o.meta, payload); err != nil {
		return badRequest("%v", err)
	}
	o.meta.ReceivedAt = start.UTC()
	o.meta.Source = event.SourceWebhook

	if f := h.publishing.Load(); f != nil {
		(*f)(r.Context())
	}
	o.duplicate, release, err = h.publish(ctx, &o.meta, payload)
	return err
}

// publish stores the delivery and waits for JetStream's ack. release reports whether the payload's
// memory may be reused (false while an abandoned async publish may still reference it).
func (h *webhook) publish(ctx context.Context, m *event.Meta, payload []byte) (duplicate, release bool, err error) {
	if h.nc != nil && !h.nc.IsConnected() {
		return false, true, unavailable("NATS connection is "+h.nc.Status().String(), nil)
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.PublishTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: payload}
	t0 := time.Now()
	var ack *jetstream.PubAck
	release = true
	if h.async.Load() {
		ack, release, err = publishAsync(ctx, h.js, msg)
	} else {
		// No Nats-Msg-Id: the one-message-per-delivery subject already refuses a second copy,
		// atomically and for as long as the stream keeps the first, and the server's
		// Msg-Id window would hold two more minutes of ids in memory for nothing.
		ack, err = h.js.PublishMsg(ctx, msg)
	}
	h.m.publishDuration.Observe(time.Since(t0).Seconds())
	if err == nil && ack.Stream != broker.StreamEvents {
		// Only when HOOKD_EVENTS is gone and another stream took its subjects: what that stream
		// keeps, the processor never reads.
		h.log.Error().Str("stream", ack.Stream).Str("delivery", m.Delivery).
			Msg("delivery stored in stream " + ack.Stream + ", not " + broker.StreamEvents + ": restart hookd to recreate " + broker.StreamEvents + ", after removing the stream that listens on " + event.InPrefix + ".>")
		return false, release, unavailable("stored in the wrong stream ("+ack.Stream+")", nil)
	}
	duplicate, err = broker.PublishOutcome(ack, err)
	switch {
	case err == nil:
		return duplicate, release, nil
	case broker.IsStreamFull(err):
		h.log.Error().Err(err).Str("stream", broker.StreamEvents).Str("delivery", m.Delivery).
			Msg("events stream is full: deliveries are refused (503) until space is freed; raise nats.max_bytes or lower nats.max_age, and check that the processor keeps up")
		return false, release, unavailable("events stream full", err)
	case errors.Is(err, nats.ErrMaxPayload):
		h.log.Error().Err(err).Str("delivery", m.Delivery).Int("bytes", len(payload)).
			Msg("delivery is larger than the NATS server's max_payload: raise max_payload on the NATS server (GitHub sends up to 25 MiB) or lower http.max_body_bytes")
		return false, release, unavailable("publish", err)
	case errors.Is(err, context.DeadlineExceeded):
		return false, release, unavailable("no JetStream ack within http.publish_timeout", err)
	default:
		return false, release, unavailable("publish", err)
	}
}

// publishAsync publishes with PublishMsgAsync and waits for this message's own ack future.
func publishAsync(ctx context.Context, js jetstream.JetStream, msg *nats.Msg) (*jetstream.PubAck, bool, error) {
	f, err := js.PublishMsgAsync(msg)
	if err != nil {
		return nil, true, err
	}
	select {
	case ack := <-f.Ok():
		return ack, true, nil
	case err := <-f.Err():
		return nil, true, err
	case <-ctx.Done():
		return nil, false, ctx.Err()
	}
}

func (h *webhook) getBuf(contentLength int64) *[]byte {
	bp, _ := h.bufs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, 0, 32<<10)
		bp = &b
	}
	// One allocation of the announced size (+1 to see EOF) instead of growing step by step, up to
	// maxPooledBuf: the size is the client's claim, made before any byte of the body arrived or its
	// signature was checked, so a larger body grows as its bytes arrive.
	if want := int(min(contentLength+1, maxPooledBuf)); contentLength > 0 && cap(*bp) < want {
		b := make([]byte, 0, want)
		bp = &b
	}
	*bp = (*bp)[:0]
	return bp
}

func (h *webhook) putBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBuf {
		h.bufs.Put(bp)
	}
}

// startsObject reports whether b's first non-blank byte opens a JSON object (ParsePayload alone
// would accept "null").
func startsObject(b []byte) bool {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{':
			return true
		default:
			return false
		}
	}
	return false
}

// readBody appends everything r yields to buf.
func readBody(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// writeStored answers a stored (or already stored) delivery. The delivery id is a validated
// subject token, safe to put in JSON as is.
func writeStored(w http.ResponseWriter, status int, delivery string, duplicate, ping bool) {
	b := make([]byte, 0, 96)
	b = append(b, `{"delivery":"`...)
	b = append(b, delivery...)
	b = append(b, `","stored":true`...)
	if duplicate {
		b = append(b, `,"duplicate":true`...)
	}
	if ping {
		b = append(b, `,"ping":true`...)
	}
	b = append(b, "}\n"...)
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func (h *webhook) writeError(w http.ResponseWriter, status int, msg string) {
	if status == http.StatusServiceUnavailable {
		secs := int((h.cfg.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	}
	writeJSONError(w, status, msg)
}

func writeJSONError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	b = append(b, '\n')
	hd := w.Header()
	hd.Set("Content-Type", "application/json")
	hd.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
