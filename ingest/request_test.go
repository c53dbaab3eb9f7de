package ingest

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/hookd/hookd/internal/event"
)

func TestCanonicalKeys(t *testing.T) {
	for key, name := range map[string]string{
		keyEvent: HeaderEvent, keyDelivery: HeaderDelivery, keyHookID: HeaderHookID, keyTargetID: HeaderTargetID,
		keyTargetType: HeaderTargetType, keySig256: HeaderSignature256, keySigSHA1: HeaderSignatureSHA1,
	} {
		if got := http.CanonicalHeaderKey(name); got != key {
			t.Errorf("canonical %s = %s, have %s", name, got, key)
		}
	}
}

// FuzzParseHeaders: never panics; what it accepts is valid for event.Meta.Subject, and what it
// refuses is refused as a bad request naming a header.
func FuzzParseHeaders(f *testing.F) {
	f.Add("issues", "72d3162e-cc78-11e3-81ab-4c9367dc0958", "123", "79929171", "integration", "sha256=00")
	f.Add("", "", "", "", "", "")
	f.Add("pull_request", "a.b", "-1", "x", "repository\n", "sha1=00")
	f.Add("Issues", "d", "9223372036854775808", "", "", "sha256=0000000000000000000000000000000000000000000000000000000000000000")
	f.Fuzz(func(t *testing.T, ev, id, hookID, targetID, targetType, sig string) {
		h := http.Header{}
		for k, v := range map[string]string{keyEvent: ev, keyDelivery: id, keyHookID: hookID, keyTargetID: targetID, keyTargetType: targetType, keySig256: sig} {
			if v != "" {
				h[k] = []string{v}
			}
		}
		var m event.Meta
		err := parseHeaders(h, &m)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
		} else {
			if !event.ValidEventName(m.Event) || !event.ValidDeliveryID(m.Delivery) || m.HookID < 0 || m.TargetID < 0 || !printable(m.TargetType) {
				t.Fatalf("accepted %+v", m)
			}
			if m.Event != ev || m.Delivery != id {
				t.Fatalf("event/delivery changed: %+v", m)
			}
		}
		if s, err := signatureHeader(h); err == nil && len(s) != 71 {
			t.Fatalf("signature header %q accepted", s)
		} else if err != nil && !errors.Is(err, ErrSignature) {
			t.Fatalf("signature error %v does not wrap ErrSignature", err)
		}
		_ = requestID(http.Header{"X-Request-Id": {ev}})
	})
}

// FuzzDecodeForm: never panics; a payload it returns is the single payload field as url.ParseQuery
// decodes it.
func FuzzDecodeForm(f *testing.F) {
	f.Add([]byte("payload=%7B%22a%22%3A1%7D"))
	f.Add([]byte("payload=%7B%7D&payload=%7B%7D"))
	f.Add([]byte("payload="))
	f.Add([]byte("payload=%zz"))
	f.Add([]byte("a=1;b=2"))
	f.Add([]byte("data=1&payload=+%2B"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := decodeForm(body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		vals, qerr := url.ParseQuery(string(body))
		if qerr != nil || len(vals["payload"]) != 1 || vals["payload"][0] != string(p) || len(p) == 0 {
			t.Fatalf("decodeForm(%q) = %q; ParseQuery %v %v", body, p, vals, qerr)
		}
	})
}

func TestIsForm(t *testing.T) {
	for ct, want := range map[string]bool{
		"application/x-www-form-urlencoded":                true,
		"Application/X-WWW-Form-Urlencoded; charset=utf-8": true,
		"application/json":                                 false,
		"":                                                 false,
	} {
		if isForm(ct) != want {
			t.Errorf("isForm(%q) != %v", ct, want)
		}
	}
}

// TestSignatureHeader: every refusal is a 401 whose message says what is wrong with the header.
func TestSignatureHeader(t *testing.T) {
	good := signaturePrefix + strings.Repeat("0a", 32)
	for _, tc := range []struct {
		name string
		h    http.Header
		want string // substring of the 401 message; "" for accepted
	}{
		{"one", http.Header{keySig256: {good}}, ""},
		{"missing", http.Header{}, "missing " + HeaderSignature256},
		{"only sha1", http.Header{keySigSHA1: {"sha1=" + strings.Repeat("0", 40)}}, "legacy"},
		{"sent twice", http.Header{keySig256: {good, good}}, "sent more than once"},
		{"two in one value", http.Header{keySig256: {good + "," + good}}, "is not sha256="},
		{"sha1 prefix", http.Header{keySig256: {"sha1=" + strings.Repeat("0", 64)}}, "is not sha256="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig, err := signatureHeader(tc.h)
			if tc.want == "" {
				if err != nil || sig != good {
					t.Fatalf("signatureHeader = %q, %v; want %q", sig, err, good)
				}
				return
			}
			if status, _, msg := errorResponse(err); status != http.StatusUnauthorized || !strings.Contains(msg, tc.want) {
				t.Fatalf("answer %d %q, want 401 mentioning %q", status, msg, tc.want)
			}
		})
	}
}
