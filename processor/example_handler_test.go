package processor_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/payloads"
	"github.com/hookd/hookd/processor"
)

// Adding a handler: write a function of (ctx, *Event) error, register it on the Mux under a
// stable name with the events it wants, and return nil when done, processor.Permanent(err) when
// retrying cannot help, processor.RetryAfter(err, d) when GitHub said when to come back, or any
// other error to be retried with backoff. Effects that must happen once go through ev.Ledger or
// the built-in effects (processor.CreateComment, AddLabels, RemoveLabel).
//
// This example runs end to end: an embedded JetStream, the processor, and one event stored the
// way ingest stores a webhook delivery.
func Example_handler() {
	handled := make(chan struct{})

	// 1. The handler. Parsed decodes the payload once into go-github's type.
	greet := func(ctx context.Context, ev *processor.Event) error {
		parsed, err := ev.Parsed()
		if err != nil {
			return err // permanent: the payload does not decode
		}
		e := parsed.(*github.IssuesEvent)
		fmt.Printf("%s: issue #%d %q opened in %s (attempt %d)\n",
			ev.Handler, e.GetIssue().GetNumber(), e.GetIssue().GetTitle(), ev.Tenant.FullName(), ev.Attempt)
		// A GitHub effect would be: processor.CreateComment(ctx, ev, e.GetIssue().GetNumber(), "welcome", "Thanks!")
		close(handled)
		return nil
	}

	// 2. Registration: one line per handler, read top to bottom.
	var mux processor.Mux
	if err := mux.HandleFunc("greet", processor.On("issues.opened"), greet); err != nil {
		panic(err)
	}

	// 3. What `hookd serve` does: JetStream with hookd's topology, then the processor.
	dir, _ := os.MkdirTemp("", "hookd-example-")
	defer os.RemoveAll(dir)
	cfg := broker.Config{DataDir: dir, Listen: "127.0.0.1:-1", Sync: broker.SyncInterval, Partitions: 4}
	cfg.Defaults()
	srv, err := broker.StartEmbedded(cfg, zerolog.Nop())
	if err != nil {
		panic(err)
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := broker.Ensure(ctx, js, cfg); err != nil {
		panic(err)
	}
	p, err := processor.New(processor.Config{BotLogin: "myapp[bot]"}, processor.Deps{JS: js, Mux: &mux, Partitions: cfg.Partitions})
	if err != nil {
		panic(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()

	// 4. A delivery stored the way ingest stores it: headers from event.Meta, subject from
	// the tenant and the delivery id (one message per delivery subject: a redelivery is refused).
	body := payloads.Get("issues.opened")
	m := event.Meta{Event: "issues", Delivery: "72d3162e-cc78-11e3-81ab-4c9367dc0958", ReceivedAt: time.Now(), Source: event.SourceWebhook}
	if err := event.ParsePayload(&m, body); err != nil {
		panic(err)
	}
	m.InstallationID = 1 // the example payload has no installation; GitHub's always do
	if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: m.Subject(), Header: m.Header(), Data: body}); err != nil {
		panic(err)
	}

	<-handled
	stop() // graceful: stop fetching, let handlers finish, hand back the rest
	if err := <-done; err != nil {
		panic(err)
	}
	// Output:
	// greet: issue #1 "Spelling error in the README file" opened in Codertocat/Hello-World (attempt 1)
}
