// Command hookd is the hookd binary: `hookd serve` runs the webhook endpoint, the processor and
// the sweeps in one process on an embedded JetStream (or joins a NATS cluster), and the other
// subcommands operate and test a deployment. main assembles every part by hand; see
// docs/ARCHITECTURE.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signalContext()
	defer stop()
	if err := newRootCmd().ExecuteContext(ctx); err != nil {
		var ec exitCode
		if errors.As(err, &ec) {
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "hookd:", err)
		os.Exit(1)
	}
}

// exitCode ends the process with a code after the command has already printed what it had to.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// signalContext ends on the first SIGINT or SIGTERM, which starts the graceful drain. A second
// one ends the process at once with exit status 1, without waiting for the drain.
func signalContext() (context.Context, context.CancelFunc) {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-sigs:
		case <-ctx.Done():
			return
		}
		cancel()
		s := <-sigs
		fmt.Fprintf(os.Stderr, "hookd: second signal (%s): exiting without finishing the drain\n", s)
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}
