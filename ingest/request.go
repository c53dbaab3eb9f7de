package ingest

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/hookd/hookd/internal/event"
)

// Request headers GitHub sends with every delivery, and the request id hookd logs.
const (
	HeaderEvent      = "X-GitHub-Event"
	HeaderDelivery   = "X-GitHub-Delivery"
	HeaderHookID     = "X-GitHub-Hook-ID"
	HeaderTargetID   = "X-GitHub-Hook-Installation-Target-ID"
	HeaderTargetType = "X-GitHub-Hook-Installation-Target-Type"
	HeaderRequestID  = "X-Request-Id"
)

const (
	contentTypeForm  = "application/x-www-form-urlencoded"
	formPayloadField = "payload"
	pingEvent        = "ping"
	maxTargetTypeLen = 64
	maxRequestIDLen  = 128
)

// Canonical forms of the header keys (as http.CanonicalHeaderKey gives them), to index
// http.Header directly; TestCanonicalKeys checks them.
const (
	keyEvent      = "X-Github-Event"
	keyDelivery   = "X-Github-Delivery"
	keyHookID     = "X-Github-Hook-Id"
	keyTargetID   = "X-Github-Hook-Installation-Target-Id"
	keyTargetType = "X-Github-Hook-Installation-Target-Type"
	keySig256     = "X-Hub-Signature-256"
	keySigSHA1    = "X-Hub-Signature"
)

// single returns the one value of header key, "" when absent, ok=false when sent more than once.
func single(h http.Header, key string) (string, bool) {
	switch v := h[key]; len(v) {
	case 0:
		return "", true
	case 1:
		return v[0], true
	default:
		return "", false
	}
}

// parseHeaders fills m from the delivery's X-GitHub-* headers. Event and delivery id are required
// and must be valid subject tokens (event.ValidEventName, event.ValidDeliveryID); the optional ids
// must be decimal. The error wraps ErrBadRequest and names the header.
func parseHeaders(h http.Header, m *event.Meta) error {
	ev, ok := single(h, keyEvent)
	switch {
	case !ok:
		return badRequest("%s header sent more than once", HeaderEvent)
	case ev == "":
		return badRequest("missing %s header", HeaderEvent)
	case !event.ValidEventName(ev):
		return badRequest("%s header %q is not an event name (1 to 64 of a-z, 0-9, _)", HeaderEvent, clip(ev))
	}
	id, ok := single(h, keyDelivery)
	switch {
	case !ok:
		return badRequest("%s header sent more than once", HeaderDelivery)
	case id == "":
		return badRequest("missing %s header", HeaderDelivery)
	case !event.ValidDeliveryID(id):
		return badRequest("%s header %q is not a delivery id (1 to 128 of letters, digits, - and _)", HeaderDelivery, clip(id))
	}
	m.Event, m.Delivery = ev, id
	var err error
	if m.HookID, err = optionalID(h, keyHookID, HeaderHookID); err != nil {
		return err
	}
	if m.TargetID, err = optionalID(h, keyTargetID, HeaderTargetID); err != nil {
		return err
	}
	tt, ok := single(h, keyTargetType)
	if !ok || len(tt) > maxTargetTypeLen || !printable(tt) {
		return badRequest("%s header is not one short printable value", HeaderTargetType)
	}
	m.TargetType = tt
	return nil
}

func optionalID(h http.Header, key, name string) (int64, error) {
	v, ok := single(h, key)
	if !ok {
		return 0, badRequest("%s header sent more than once", name)
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, badRequest("%s header %q is not a decimal id", name, clip(v))
	}
	return n, nil
}

// signatureHeader returns the X-Hub-Signature-256 value, or an error wrapping ErrSignature when it
// is absent (saying so when only the legacy SHA-1 header came), sent more than once or not
// sha256=<64 hex digits>. It lets a delivery be refused before its body is read; VerifySignature
// does the real check.
func signatureHeader(h http.Header) (string, error) {
	sig, ok := single(h, keySig256)
	if !ok {
		return "", errSigRepeated
	}
	if sig == "" {
		if len(h[keySigSHA1]) > 0 {
			return "", errSigOnlySHA1
		}
		return "", errSigMissing
	}
	if !strings.HasPrefix(sig, signaturePrefix) || len(sig) != len(signaturePrefix)+64 {
		return "", errSigMalformed
	}
	return sig, nil
}

// isForm reports whether a Content-Type is application/x-www-form-urlencoded (any parameters).
func isForm(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), contentTypeForm)
}

// decodeForm returns the payload field of a form-encoded delivery body. The error wraps
// ErrBadRequest.
func decodeForm(body []byte) ([]byte, error) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("form-encoded body (Content-Type %s) does not decode: %v", contentTypeForm, err)
	}
	p := vals[formPayloadField]
	switch {
	case len(p) == 0:
		return nil, badRequest("form-encoded body (Content-Type %s) has no %q field; GitHub sends payload=<JSON>, or set the webhook's content type to application/json", contentTypeForm, formPayloadField)
	case len(p) > 1:
		return nil, badRequest("form-encoded body has %d %q fields, want one", len(p), formPayloadField)
	case p[0] == "":
		return nil, badRequest("form-encoded body has an empty %q field", formPayloadField)
	}
	return []byte(p[0]), nil
}

// requestID returns a usable X-Request-Id value from the request, or "" when absent or unusable
// (too long, not printable ASCII).
func requestID(h http.Header) string {
	v := h.Get(HeaderRequestID)
	if v == "" || len(v) > maxRequestIDLen || !printable(v) {
		return ""
	}
	return v
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// clip shortens a client-supplied value quoted in an error message.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
