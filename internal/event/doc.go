// Package event holds hookd's shared wire types: the Tenant an event belongs to, the Meta that
// ingest extracts from a delivery and stores as JetStream message headers, and the subject scheme
// that carries the tenant by numeric ids.
//
// It is a leaf package: ingest, processor, sweep and the CLI import it; it imports nothing of
// hookd's. Glossary (see docs/ARCHITECTURE.md): a delivery is one webhook POST; an event is its
// payload as stored; a tenant is one repository of one installation, or the installation itself
// for installation-level events.
package event
