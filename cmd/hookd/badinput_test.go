package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hookd/hookd/ingest"
	"github.com/hookd/hookd/internal/broker/brokertest"
	"github.com/hookd/hookd/internal/config"
	"github.com/hookd/hookd/internal/githubfake"
	"github.com/hookd/hookd/internal/payloads"
)

// TestServeBadInput: what stops serve at start says which setting or which party is wrong.
func TestServeBadInput(t *testing.T) {
	t.Parallel()
	fake, _ := newFake(t)
	for _, tc := range []struct {
		name string
		mod  func(t *testing.T, c *config.Config)
		want []string
	}{
		{"unreachable NATS", func(t *testing.T, c *config.Config) {
			c.NATS.URL = "nats://127.0.0.1:" + strconv.Itoa(brokertest.FreePort(t))
			c.NATS.ConnectTimeout = time.Second
		}, []string{"HOOKD_NATS_URL"}},
		{"malformed private key", func(t *testing.T, c *config.Config) {
			p := filepath.Join(t.TempDir(), "broken.pem")
			os.WriteFile(p, []byte("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n"), 0o600)
			c.GitHub.PrivateKeyFile = p
		}, []string{"broken.pem"}},
		{"unreadable private key", func(t *testing.T, c *config.Config) {
			c.GitHub.PrivateKeyFile = filepath.Join(t.TempDir(), "missing.pem")
		}, []string{"missing.pem"}},
		{"wrong app id: GitHub answers 401", func(t *testing.T, c *config.Config) {
			c.GitHub.AppID = 999
		}, []string{"401", "github.app_id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := testConfig(t, t.TempDir(), fake)
			cfg.HTTP.Addr = "127.0.0.1:0"
			tc.mod(t, cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a, err := newApp(ctx, cfg, newLogger(config.Log{Level: "error"}, io.Discard), appOptions{})
			if err == nil {
				// What needs GitHub fails in Run, after /healthz is up.
				if err = a.Run(ctx); err == nil {
					t.Fatal("serve ran and stopped without an error; want one")
				}
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestSendCommand: `hookd send` signs the payload as GitHub does; hookd's verifier accepts it.
func TestSendCommand(t *testing.T) {
	t.Parallel()
	type got struct {
		header http.Header
		body   []byte
	}
	seen := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- got{r.Header.Clone(), b}
		w.WriteHeader(http.StatusAccepted)
		io.WriteString(w, `{"stored":true}`)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "issue.json")
	if err := os.WriteFile(file, payloads.Get("issues.opened"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runCLI(t, "send", "--url", srv.URL, "--secret", "s3cret", "--event", "issues", "--action", "labeled",
		"--installation", "42", "--delivery", "d-send-1", "--file", file)
	if err != nil || !strings.Contains(out, "202") {
		t.Fatalf("send: %v\n%s", err, out)
	}
	g := <-seen
	if g.header.Get("X-GitHub-Event") != "issues" || g.header.Get("X-GitHub-Delivery") != "d-send-1" {
		t.Fatalf("headers %v", g.header)
	}
	if _, err := ingest.VerifySignature([][]byte{[]byte("other"), []byte("s3cret")}, g.body, g.header.Get("X-Hub-Signature-256")); err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	if want := "sha256=" + githubfake.Sign(sha256.New, "s3cret", g.body); g.header.Get("X-Hub-Signature-256") != want {
		t.Fatalf("signature %s, want %s", g.header.Get("X-Hub-Signature-256"), want)
	}
	if !strings.Contains(string(g.body), `"action":"labeled"`) || !strings.Contains(string(g.body), `"installation":{"id":42}`) {
		t.Fatalf("payload not patched: %.200s", g.body)
	}
	// An accepted delivery exits 0, a refused one with status 2.
	if _, err := runCLI(t, "send", "--url", srv.URL+"/nope", "--event", "issues", "--file", file, "--secret", "x"); err != nil {
		t.Fatalf("send to a 202 server: %v", err)
	}
	<-seen
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusUnauthorized) }))
	defer bad.Close()
	var ec exitCode
	if _, err := runCLI(t, "send", "--url", bad.URL, "--event", "issues", "--file", file, "--secret", "x"); !errors.As(err, &ec) || ec != 2 {
		t.Fatalf("send answered 401: %v, want exit status 2", err)
	}
}

// TestServeRolesFlag: --roles is read like HOOKD_ROLES (spaces around names dropped), and a list
// without a role stops serve before anything starts, naming the flag.
func TestServeRolesFlag(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "hookd.yaml")
	if err := os.WriteFile(cfgFile, []byte("data_dir: "+dir+"\nnats:\n  listen: 127.0.0.1:0\n  sync: interval\nhttp:\n  addr: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		roles string
		want  string
	}{
		{"", "--roles: no role given"},
		{" , ", "--roles: no role given"},
		{"ingest, web", `roles: "web" is not a role`},
	} {
		t.Run(tc.roles, func(t *testing.T) {
			t.Parallel()
			out, err := runCLI(t, "serve", "--config", cfgFile, "--roles", tc.roles)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve --roles %q: error %v, want one containing %q\n%s", tc.roles, err, tc.want, out)
			}
		})
	}
}

// TestSendSecretFromEnv: without --secret, `hookd send` signs with the first secret of
// HOOKD_GITHUB_WEBHOOK_SECRETS, trimmed, as hookd reads that variable.
func TestSendSecretFromEnv(t *testing.T) {
	t.Setenv("HOOKD_GITHUB_WEBHOOK_SECRETS", " s3cret , older")
	sigs := make(chan string, 1)
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ = io.ReadAll(r.Body)
		sigs <- r.Header.Get("X-Hub-Signature-256")
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	file := filepath.Join(t.TempDir(), "issue.json")
	if err := os.WriteFile(file, payloads.Get("issues.opened"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runCLI(t, "send", "--url", srv.URL, "--event", "issues", "--file", file); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	if idx, err := ingest.VerifySignature([][]byte{[]byte("s3cret")}, body, <-sigs); err != nil || idx != 0 {
		t.Fatalf("signed with another secret than the trimmed first one: %v", err)
	}
}
