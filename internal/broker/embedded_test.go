package broker_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
)

// TestStartEmbedded: a server that cannot start fails with the server's own reason (and at once,
// not after the 30 s readiness wait).
func TestStartEmbedded(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { taken.Close() })
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		mod     func(*broker.Config)
		wantErr []string
	}{
		{"port taken", func(c *broker.Config) { c.Listen = taken.Addr().String() }, []string{"address already in use", "nats.listen"}},
		{"store directory unusable", func(c *broker.Config) { c.DataDir = file }, []string{"Can't start JetStream", "nats.data_dir"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := broker.Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1"}
			tc.mod(&cfg)
			cfg.Defaults()
			srv, err := broker.StartEmbedded(cfg, zerolog.Nop())
			if err == nil {
				srv.Shutdown()
				t.Fatal("started; want an error")
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}
