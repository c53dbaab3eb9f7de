package ingest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// Signature headers GitHub sends. hookd verifies only the SHA-256 one.
const (
	HeaderSignature256  = "X-Hub-Signature-256"
	HeaderSignatureSHA1 = "X-Hub-Signature" // legacy; never accepted alone
)

const signaturePrefix = "sha256="

// Signature errors, all wrapping ErrSignature.
var (
	errSigMissing   = sigError("missing " + HeaderSignature256 + " header")
	errSigOnlySHA1  = sigError("only the legacy " + HeaderSignatureSHA1 + " (SHA-1) header was sent; hookd needs " + HeaderSignature256)
	errSigMalformed = sigError(HeaderSignature256 + " is not sha256=<64 hex digits>")
	errSigRepeated  = sigError(HeaderSignature256 + " header sent more than once")
	errSigMismatch  = sigError(HeaderSignature256 + " does not match the body with any configured webhook secret")
	errSigNoSecret  = errors.New("no webhook secret to verify with")
)

func sigError(msg string) error { return &wrapped{sentinel: ErrSignature, msg: msg} }

// Sign returns the X-Hub-Signature-256 value GitHub sends for body under secret:
// "sha256=" and the lowercase hex HMAC-SHA256 of the body.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return signaturePrefix + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks an X-Hub-Signature-256 value against the raw body, as received, under
// each secret in turn, and returns the index of the first secret whose HMAC-SHA256 equals the
// signature (compared in constant time). It returns an error wrapping ErrSignature for an empty,
// malformed or non-matching signature, and a plain error when secrets is empty. It never panics.
func VerifySignature(secrets [][]byte, body []byte, signature string) (int, error) {
	if len(secrets) == 0 {
		return -1, errSigNoSecret
	}
	if signature == "" {
		return -1, errSigMissing
	}
	if len(signature) != len(signaturePrefix)+2*sha256.Size || signature[:len(signaturePrefix)] != signaturePrefix {
		return -1, errSigMalformed
	}
	var want [sha256.Size]byte
	if _, err := hex.Decode(want[:], []byte(signature[len(signaturePrefix):])); err != nil {
		return -1, errSigMalformed
	}
	var sum [sha256.Size]byte
	for i, secret := range secrets {
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		if hmac.Equal(m.Sum(sum[:0]), want[:]) {
			return i, nil
		}
	}
	return -1, errSigMismatch
}
