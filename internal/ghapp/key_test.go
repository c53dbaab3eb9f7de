package ghapp_test

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/internal/githubfake"
)

// TestPrivateKeyForms: the app's key as operators hand it over, each used for a real JWT call
// to the fake.
func TestPrivateKeyForms(t *testing.T) {
	t.Parallel()
	fake := githubfake.NewServer(t, githubfake.Options{})
	pkcs1 := string(fake.App().PrivateKeyPEM)
	block, _ := pem.Decode([]byte(pkcs1))
	rsaKey, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	for _, tc := range []struct {
		name, pem string
	}{
		{"PKCS#1 as GitHub generates it", pkcs1},
		{"PKCS#8", pkcs8},
		{"CRLF line endings", strings.ReplaceAll(pkcs1, "\n", "\r\n")},
		{"newlines escaped as \\n", strings.ReplaceAll(pkcs1, "\n", `\n`)},
		{"CRLF escaped as \\r\\n", strings.ReplaceAll(pkcs1, "\n", `\r\n`)},
		{"PKCS#8 with escaped newlines", strings.ReplaceAll(pkcs8, "\n", `\n`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(t.TempDir(), "app.pem")
			if err := os.WriteFile(file, []byte(tc.pem), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, cfg := range []ghapp.Config{{PrivateKey: tc.pem}, {PrivateKeyFile: file}} {
				cfg.AppID, cfg.APIURL = fake.App().ID, fake.URL()
				app, err := ghapp.New(cfg, ghapp.Options{Now: fake.Now})
				if err != nil {
					t.Fatalf("New (file %t): %v", cfg.PrivateKeyFile != "", err)
				}
				if _, _, err := app.Client().Apps.Get(t.Context(), ""); err != nil {
					t.Fatalf("Apps.Get (file %t): %v", cfg.PrivateKeyFile != "", err)
				}
			}
		})
	}
	t.Run("encrypted", func(t *testing.T) {
		t.Parallel()
		for _, enc := range []string{
			"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00112233445566778899AABBCCDDEEFF\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
			"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
		} {
			_, err := ghapp.New(ghapp.Config{AppID: 1, PrivateKey: enc}, ghapp.Options{})
			if err == nil || !strings.Contains(err.Error(), "github.private_key: the private key is encrypted") {
				t.Errorf("New with an encrypted key: %v, want it named as encrypted", err)
			}
		}
	})
}

// TestClockSkew: a machine whose clock is minutes off GitHub's signs JWTs GitHub rejects (iat
// in its future, or exp more than 10 minutes ahead); the app learns GitHub's time from the
// rejection's Date header and signs again, once, instead of failing every call.
func TestClockSkew(t *testing.T) {
	t.Parallel()
	for _, skew := range []time.Duration{3 * time.Minute, -15 * time.Minute, 2 * time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			t.Parallel()
			fake := githubfake.NewServer(t, githubfake.Options{}) // GitHub's clock, and its Date header: time.Now
			inst, err := fake.AddInstallation("acme", "widgets")
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var unauthorized int
			app, err := ghapp.New(ghapp.Config{AppID: fake.App().ID, PrivateKey: string(fake.App().PrivateKeyPEM), APIURL: fake.URL()},
				ghapp.Options{
					Now: func() time.Time { return time.Now().Add(skew) },
					OnResponse: func(_ int64, resp *http.Response) {
						if resp.StatusCode == http.StatusUnauthorized {
							mu.Lock()
							unauthorized++
							mu.Unlock()
						}
					},
				})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if _, _, err := app.Client().Apps.Get(t.Context(), ""); err != nil {
					t.Fatalf("Apps.Get #%d: %v", i, err)
				}
			}
			c, err := app.Installation(inst.ID)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				if _, _, err := c.Repositories.Get(t.Context(), "acme", "widgets"); err != nil {
					t.Fatalf("installation call #%d: %v", i, err)
				}
			}
			if n := fake.Stats(inst.ID).TokensMinted; n != 1 {
				t.Fatalf("minted %d tokens for two calls, want its expiry read on GitHub's clock", n)
			}
			mu.Lock()
			defer mu.Unlock()
			if unauthorized != 1 {
				t.Fatalf("%d answers 401, want the first JWT alone rejected", unauthorized)
			}
		})
	}
}
