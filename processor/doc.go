// Package processor owns event handling: it takes the events ingest stored in the HOOKD_EVENTS
// stream and runs the registered handlers on them, per tenant in stored order, on any number of
// replicas, with retries, dead letters and an effect ledger that makes effects happen once.
//
// The user API is small: a Handler (or HandlerFunc) receives an *Event; a Mux registers handlers
// by name for events ("issues.opened"); handlers return nil, Permanent(err), RetryAfter(err, d)
// or any error. Effects that must happen once go through Event.Ledger, or through the built-in
// effects CreateComment, AddLabels and RemoveLabel. example_handler_test.go is the "add a
// handler" guide.
//
// The running part is one PartitionConsumer per partition of the events stream (services
// "worker:consume:partition-<p>", or all of them under Processor.Run). The DLQ type is the
// dead-letter API behind `hookd dlq`; ReadStatus is `hookd status`.
//
// # Guarantees, in short (docs/ARCHITECTURE.md has the long form)
//
//   - At least once, effects once. Every stored event is handled until every matching handler
//     succeeded or the event is dead-lettered; a crash at any instant loses nothing, because an
//     event is acknowledged only after its handlers succeeded or its dead letter was stored.
//     Handlers may run more than once; when one of an event's handlers fails, the others'
//     successes are recorded in the KV bucket hookd_effects, so the retry runs only the handlers
//     that failed, and Ledger.Do records single
//     effects, leaving one documented window (a crash between the side effect and its record)
//     that the built-in effects close by checking GitHub first.
//   - Order within a tenant. One repository's events (or one installation's, for
//     installation-level events) are handled one at a time in stored order, including while the
//     head event waits for a retry; different tenants run concurrently. Exceptions: a replayed
//     dead letter is handled after the events stored since, and a partition that moves while
//     its old replica is still alive (NATS restart, a stall longer than PinnedTTL) may reorder
//     the events that were in flight at that moment.
//   - Horizontal scale. Each partition has one durable pull consumer with the pinned-client
//     priority policy: every replica asks for every partition, the server delivers each
//     partition to exactly one of them, and moves it to a survivor PinnedTTL after a replica dies.
//   - Fairness. Each partition reads ahead up to MaxAckPending events into per-tenant queues and
//     runs ready tenants round robin on a pool of Concurrency workers, so within that window a
//     burst in one repository delays another repository's event by about one event's handling
//     per busy tenant ahead of it, not by the burst. Events stored behind more than
//     MaxAckPending events of the same partition wait for the window to reach them. Payloads
//     are held only within ReadAheadBytes per replica; events received beyond it are held as
//     stubs and their payloads read back from the stream in their turn (readahead.go), so a
//     deep window costs a few hundred bytes per event, not a payload.
//
// # Errors
//
// Exactly one function (settle) maps an outcome to a JetStream ack verb: success → Ack;
// transient → NakWithDelay(backoff, at least the server's wait hint); permanent, undecodable, or
// unclassified after Retry.MaxAttempts attempts → dead letter, then Term. Panics are recovered
// into unclassified errors and counted per handler.
package processor
