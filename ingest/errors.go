package ingest

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels for what a refused delivery was refused for. errorResponse maps each to its HTTP
// status; the detailed error wraps the sentinel.
var (
	// ErrMethodNotAllowed: the webhook route takes POST only (405).
	ErrMethodNotAllowed = errors.New("method not allowed; deliveries are POSTed")
	// ErrBadRequest: a missing or invalid header or a body that is not a payload (400).
	ErrBadRequest = errors.New("bad request")
	// ErrSignature: missing, malformed or non-matching X-Hub-Signature-256 (401).
	ErrSignature = errors.New("signature verification failed")
	// ErrTooLarge: the body is over http.max_body_bytes (413).
	ErrTooLarge = errors.New("request body too large")
	// ErrBodyTimeout: the client did not send its body within http.read_timeout (408).
	ErrBodyTimeout = errors.New("request body not received within the read timeout")
	// ErrNoSecret: no webhook secret is configured, so nothing can be verified (503).
	ErrNoSecret = errors.New("webhook secret not configured")
	// ErrUnavailable: the delivery could not be stored (JetStream unreachable, no ack in time,
	// stream full); the client should retry (503 with Retry-After).
	ErrUnavailable = errors.New("event store unavailable, delivery not stored")
)

// wrapped is an error with a message of its own that matches a sentinel and, optionally, a cause.
type wrapped struct {
	sentinel error
	msg      string
	cause    error
}

func (w *wrapped) Error() string {
	if w.cause != nil {
		return w.msg + ": " + w.cause.Error()
	}
	return w.msg
}

func (w *wrapped) Unwrap() []error {
	if w.cause != nil {
		return []error{w.sentinel, w.cause}
	}
	return []error{w.sentinel}
}

func badRequest(format string, args ...any) error {
	return &wrapped{sentinel: ErrBadRequest, msg: fmt.Sprintf(format, args...)}
}

func unavailable(msg string, cause error) error {
	return &wrapped{sentinel: ErrUnavailable, msg: msg, cause: cause}
}

// Outcomes: the values of the outcome label of hookd_ingest_deliveries_total.
const (
	OutcomeStored             = "stored"
	OutcomeDuplicate          = "duplicate"
	OutcomePing               = "ping"
	OutcomeRejectedSignature  = "rejected_signature"
	OutcomeRejectedBadRequest = "rejected_bad_request"
	OutcomeRejectedTooLarge   = "rejected_too_large"
	OutcomeRejectedMethod     = "rejected_method"
	OutcomeUnavailable        = "unavailable"
)

// errorResponse is the one place errors become HTTP answers: status, the message for the client
// and the metrics outcome. Messages of 4xx answers are hookd's own and name what is wrong; 5xx
// answers do not carry internal detail (it is logged).
func errorResponse(err error) (status int, outcome, msg string) {
	var w *wrapped
	detail := err.Error()
	if errors.As(err, &w) && w.cause == nil {
		detail = w.msg
	}
	switch {
	case errors.Is(err, ErrMethodNotAllowed):
		return http.StatusMethodNotAllowed, OutcomeRejectedMethod, ErrMethodNotAllowed.Error()
	case errors.Is(err, ErrSignature):
		return http.StatusUnauthorized, OutcomeRejectedSignature, detail
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge, OutcomeRejectedTooLarge, detail
	case errors.Is(err, ErrBodyTimeout):
		return http.StatusRequestTimeout, OutcomeRejectedBadRequest, ErrBodyTimeout.Error()
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest, OutcomeRejectedBadRequest, detail
	case errors.Is(err, ErrNoSecret):
		return http.StatusServiceUnavailable, OutcomeUnavailable, ErrNoSecret.Error()
	case errors.Is(err, ErrUnavailable):
		return http.StatusServiceUnavailable, OutcomeUnavailable, ErrUnavailable.Error()
	default:
		// Anything unforeseen is treated as "not stored": never a 2xx.
		return http.StatusServiceUnavailable, OutcomeUnavailable, ErrUnavailable.Error()
	}
}
