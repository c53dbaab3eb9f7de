package ingest_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hookd/hookd/ingest"
	"github.com/hookd/hookd/internal/payloads"
)

// TestOctokitVectors verifies signatures made by an independent implementation,
// @octokit/webhooks-methods (see the note in the vector file).
func TestOctokitVectors(t *testing.T) {
	raw, err := os.ReadFile("testdata/octokit-signatures.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			PayloadName string `json:"payload_name"`
			Payload     string `json:"payload"`
			Secret      string `json:"secret"`
			Signature   string `json:"signature"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < 10 {
		t.Fatalf("only %d vectors", len(file.Vectors))
	}
	for _, v := range file.Vectors {
		body := []byte(v.Payload)
		if v.PayloadName != "" {
			body = payloads.Get(v.PayloadName)
		}
		secrets := [][]byte{[]byte("unrelated"), []byte(v.Secret)}
		if i, err := ingest.VerifySignature(secrets, body, v.Signature); err != nil || i != 1 {
			t.Errorf("vector %q/%q: index %d, err %v; want verified by secret #1", v.PayloadName, v.Secret, i, err)
		}
		if got := ingest.Sign([]byte(v.Secret), body); got != v.Signature {
			t.Errorf("Sign disagrees with octokit: %s vs %s", got, v.Signature)
		}
		if _, err := ingest.VerifySignature(secrets[:1], body, v.Signature); !errors.Is(err, ingest.ErrSignature) {
			t.Errorf("vector verified by the wrong secret: %v", err)
		}
	}
}

func TestVerifySignature(t *testing.T) {
	body := payloads.Get("issues.opened")
	good := ingest.Sign([]byte("s2"), body)
	secrets := [][]byte{[]byte("s1"), []byte("s2")}
	for _, tc := range []struct {
		name    string
		secrets [][]byte
		sig     string
		want    int
		wantErr error
	}{
		{"second secret", secrets, good, 1, nil},
		{"uppercase hex is the same HMAC", secrets, "sha256=" + strings.ToUpper(good[7:]), 1, nil},
		{"empty", secrets, "", -1, ingest.ErrSignature},
		{"sha1 prefix", secrets, "sha1=" + good[7:], -1, ingest.ErrSignature},
		{"truncated", secrets, good[:len(good)-2], -1, ingest.ErrSignature},
		{"one bit off", secrets, good[:len(good)-1] + string(good[len(good)-1]^1), -1, ingest.ErrSignature},
		{"not hex", secrets, "sha256=" + strings.Repeat("zz", 32), -1, ingest.ErrSignature},
		{"no secrets", nil, good, -1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, err := ingest.VerifySignature(tc.secrets, body, tc.sig)
			if i != tc.want {
				t.Fatalf("index %d, want %d (err %v)", i, tc.want, err)
			}
			if tc.want >= 0 && err != nil {
				t.Fatal(err)
			}
			if tc.want < 0 && (err == nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr)) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// FuzzVerifySignature: VerifySignature never panics and accepts exactly the HMAC-SHA256 of the
// body under the secret (prefix "sha256=" as GitHub sends it, hex in either case).
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte("It's a Secret to Everybody"), []byte("Hello, World!"), "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17")
	f.Add([]byte("k"), []byte(`{"zen":"x"}`), "sha256=")
	f.Add([]byte("k"), []byte{}, "sha1=abc")
	f.Add([]byte{0}, []byte{0xff}, "sha256="+strings.Repeat("0", 64))
	// Found by fuzzing: an upper-case prefix is refused even when the digits are right.
	f.Add([]byte("It's a Secret to Everybody"), []byte("Hello, World!"), "ShA256=757107eA0eB2509fC211221CCe984B8A37570B6d7586C22C46f4379C8B043e17")
	f.Fuzz(func(t *testing.T, secret, body []byte, sig string) {
		i, err := ingest.VerifySignature([][]byte{secret}, body, sig)
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		exact := "sha256=" + hex.EncodeToString(m.Sum(nil))
		accepted := err == nil
		// GitHub's prefix is lower-case and required as such; the hex digits may be in either case.
		want := strings.HasPrefix(sig, "sha256=") && strings.EqualFold(sig, exact)
		if accepted != want {
			t.Fatalf("sig %q accepted=%v (index %d, err %v); exact HMAC is %s", sig, accepted, i, err, exact)
		}
		if accepted != (i == 0) {
			t.Fatalf("index %d with err %v", i, err)
		}
		if i, err := ingest.VerifySignature([][]byte{secret}, body, exact); err != nil || i != 0 {
			t.Fatalf("exact HMAC refused: %v", err)
		}
	})
}
