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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
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
