// Package ingest is hookd's HTTP webhook endpoint: it verifies a GitHub delivery, stores it in the
// events stream (HOOKD_EVENTS) and answers GitHub only once JetStream has acknowledged the write.
// It never acknowledges what it did not store.
//
// # What a delivery gets
//
//	valid signature, new delivery id          202 {"delivery":"<id>","stored":true}   stored once, after the publish ack
//	valid signature, delivery already stored  200 {"delivery":"<id>","stored":true,"duplicate":true}   not stored again
//	ping event                                200 {"delivery":"<id>","stored":true,"ping":true}   stored with event "ping"
//	missing/invalid X-Hub-Signature-256       401 (a delivery signed only with the old sha1 header too)
//	bad X-GitHub-Event / X-GitHub-Delivery,
//	non-JSON body, form without payload=      400 naming what is wrong
//	body over http.max_body_bytes             413, the body read no further than the limit
//	body not received within read_timeout     408
//	JetStream unreachable, publish not acked
//	within http.publish_timeout, stream full   503 with Retry-After
//	webhook secret not configured             503 "webhook secret not configured"
//	any method but POST                       405 with Allow: POST
//
// Error bodies are {"error":"..."}. Errors travel as the sentinels in errors.go, and exactly one
// function (errorResponse) maps them to a status, a message and a metrics outcome.
//
// # Storage and de-duplication
//
// The stored message is the body exactly as received (the decoded payload field for
// application/x-www-form-urlencoded deliveries) with event.Meta as headers (source "webhook", the
// index of the secret that verified it, received-at, ids from the payload and the X-GitHub-Hook-*
// headers). It is published to event.Meta.Subject, whose last token is the delivery id. The stream
// keeps one message per delivery subject and refuses a second for as long as it keeps the first
// (nats.max_age, at least 4 days), so GitHub redeliveries and client retries are answered 200
// duplicate whether they come a second or days later. No Nats-Msg-Id is set: the subject limit
// already de-duplicates, and the server's Msg-Id window would keep every id of the last two
// minutes in memory.
//
// # Secrets
//
// Deps.Secrets is a list so that a secret can be rotated: any of them verifies a delivery, and the
// index of the one that did is logged and stored (never the secret). With no secret at all the
// server still starts: /healthz answers 200, /readyz 503, and every webhook POST 503 "webhook
// secret not configured" — never 2xx, nothing stored — so that `hookd serve` without credentials
// is visibly not ready instead of silently accepting unsigned deliveries.
//
// # Time limits
//
// GitHub gives a delivery 10 seconds (GHES 30). ReadHeaderTimeout and ReadTimeout cut slow or
// stalled clients off, PublishTimeout bounds the wait for the JetStream ack, and HandlerTimeout
// bounds the whole request (Validate keeps it under 10s). When NATS is disconnected, a delivery is
// refused at once instead of waiting in the client's reconnect buffer. A client that closes (or
// half-closes) its connection once the body is sent does not cancel the store: a verified
// delivery is stored all the same, and a client still reading gets its answer.
//
// # Lifecycle
//
// The server speaks HTTP/1.1 and, for ingresses that talk h2c to their backends, HTTP/2 without
// TLS (prior knowledge). Server.Run serves until its context is done, then stops accepting
// connections and lets the requests in flight finish their publish and get their answer, for at
// most ShutdownTimeout.
// Besides the webhook route it serves GET /healthz (always 200 while the process runs), GET
// /readyz (200 only when NATS is connected, the events stream answers, a secret is configured and
// the extra readiness checks pass; it answers within 500ms) and GET /metrics.
package ingest
