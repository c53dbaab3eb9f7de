package ingest

import "context"

// Test hooks, visible to the ingest_test package only.

// SetStartedHook makes the webhook handler call f as soon as it starts handling a request.
func SetStartedHook(s *Server, f func()) { s.hook.started.Store(&f) }

// SetAsyncPublish switches between PublishMsg (false, the default) and PublishMsgAsync with a
// wait on the ack future (true), for BenchmarkIngest.
func SetAsyncPublish(s *Server, on bool) { s.hook.async.Store(on) }

// SetPublishingHook makes the webhook handler call f with the request's context once the
// delivery is verified, just before it is published.
func SetPublishingHook(s *Server, f func(reqCtx context.Context)) { s.hook.publishing.Store(&f) }
