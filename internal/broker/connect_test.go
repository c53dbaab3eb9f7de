package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
)

// silentServers returns n loopback addresses that accept TCP connections but never speak NATS.
func silentServers(t *testing.T, n int) string {
	t.Helper()
	var urls []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		urls = append(urls, "nats://"+l.Addr().String())
	}
	return strings.Join(urls, ",")
}

func TestConnect(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("credentials stay out of errors", func(t *testing.T) {
		t.Parallel()
		for _, url := range []string{
			"nats://user:s3cret@127.0.0.1:1",
			"user:s3cret@127.0.0.1:1", // nats.go adds the scheme
			"nats://t0ken@127.0.0.1:1, user:s3cret@127.0.0.1:2",
			"nats://user:s3cret%zz@127.0.0.1:1", // unparsable: url.Parse's error quotes the URL
		} {
			_, err := broker.Connect(ctx, url, broker.Config{ConnectTimeout: time.Second}, "test", zerolog.Nop())
			if err == nil {
				t.Fatalf("%s: connected", url)
			}
			if msg := err.Error(); strings.Contains(msg, "s3cret") || strings.Contains(msg, "t0ken") || !strings.Contains(msg, "nats.url") {
				t.Errorf("%s: error %q shows credentials or does not name nats.url", url, msg)
			}
		}
	})

	t.Run("first connection within connect_timeout over every listed server", func(t *testing.T) {
		t.Parallel()
		// nats.go tries the four servers in turn, each within the timeout: 4 s without a bound.
		start := time.Now()
		_, err := broker.Connect(ctx, silentServers(t, 4), broker.Config{ConnectTimeout: time.Second}, "test", zerolog.Nop())
		if took := time.Since(start); err == nil || took > 3*time.Second {
			t.Fatalf("Connect returned after %s with %v; want an error within about 1s", took, err)
		}
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "nats.connect_timeout") {
			t.Fatalf("err = %v, want a deadline naming nats.connect_timeout", err)
		}
	})

	t.Run("a server that starts late is waited for within connect_timeout", func(t *testing.T) {
		t.Parallel()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close() // refused until the server starts
		go func() {
			time.Sleep(700 * time.Millisecond)
			ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoSigs: true})
			if err != nil {
				t.Error(err)
				return
			}
			go ns.Start()
			t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
		}()
		nc, err := broker.Connect(ctx, fmt.Sprintf("nats://127.0.0.1:%d", port), broker.Config{ConnectTimeout: 20 * time.Second}, "test", zerolog.Nop())
		if err != nil {
			t.Fatalf("Connect: %v, want it to wait for the server", err)
		}
		nc.Close()
	})

	t.Run("ends with ctx", func(t *testing.T) {
		t.Parallel()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := broker.Connect(cctx, silentServers(t, 1), broker.Config{ConnectTimeout: 10 * time.Second}, "test", zerolog.Nop())
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}
