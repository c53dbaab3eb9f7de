package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigCheck: `hookd config check` prints no secret, checks the private key whenever serve
// would use it, and warns only about the credentials the configured roles need.
func TestConfigCheck(t *testing.T) {
	t.Parallel()
	fake, _ := newFake(t)
	dir := t.TempDir()
	goodKey := filepath.Join(dir, "app.pem")
	if err := os.WriteFile(goodKey, fake.App().PrivateKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	badKey := filepath.Join(dir, "broken.pem")
	if err := os.WriteFile(badKey, []byte("-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	openKey := filepath.Join(dir, "open.pem")
	if err := os.WriteFile(openKey, fake.App().PrivateKeyPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(openKey, 0o644); err != nil { // whatever the umask
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		file    string
		wantErr string   // "" for success
		want    []string // in the output
		not     []string // nowhere in the output or the error
	}{
		{"credentials in the NATS URL are not printed",
			"nats:\n  url: nats://hookd:hunter2@127.0.0.1:4222,nats://tok3n@127.0.0.2:4222\n",
			"", []string{"configuration ok", "nats://***@127.0.0.1:4222,nats://***@127.0.0.2:4222"}, []string{"hunter2", "tok3n"}},
		{"a broken key is found without a webhook secret",
			"roles: [process]\ngithub:\n  app_id: 1\n  private_key_file: " + badKey + "\n",
			"broken.pem", nil, []string{"configuration ok"}},
		{"a processor is not told to set a webhook secret",
			"roles: [process]\ngithub:\n  app_id: 1\n  private_key_file: " + goodKey + "\n",
			"", []string{"configuration ok"}, []string{"webhook_secret", "credentials missing"}},
		{"a key file every user can read is pointed out",
			"roles: [process]\ngithub:\n  app_id: 1\n  private_key_file: " + openKey + "\n",
			"", []string{"configuration ok", "open.pem can be read by every user", "mode 0644"}, nil},
		{"a key file only its owner reads is not",
			"roles: [process]\ngithub:\n  app_id: 1\n  private_key_file: " + goodKey + "\n",
			"", []string{"configuration ok"}, []string{"can be read by every user"}},
		{"ingest is told to set a webhook secret",
			"roles: [ingest]\ngithub:\n  app_id: 1\n  private_key_file: " + goodKey + "\n",
			"", []string{"configuration ok", "warning: GitHub App credentials missing: github.webhook_secrets (HOOKD_GITHUB_WEBHOOK_SECRET)"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfgFile := filepath.Join(t.TempDir(), "hookd.yaml")
			if err := os.WriteFile(cfgFile, []byte(tc.file), 0o600); err != nil {
				t.Fatal(err)
			}
			out, err := runCLI(t, "config", "check", "--config", cfgFile)
			all := out
			if err != nil {
				all += err.Error()
			}
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("config check: %v\n%s", err, out)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("config check: error %v, want one containing %q\n%s", err, tc.wantErr, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(all, n) {
					t.Errorf("output or error shows %q:\n%s", n, all)
				}
			}
		})
	}
}
