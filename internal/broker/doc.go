// Package broker owns hookd's JetStream topology and its lifecycle: the embedded nats-server that
// `hookd serve` starts by default, the connection to an external NATS, and the idempotent creation
// of every stream and KV bucket hookd uses (see Ensure and docs/ARCHITECTURE.md for the names).
//
// Nothing else in hookd creates streams or buckets; the other packages look them up by the names
// exported here.
package broker
