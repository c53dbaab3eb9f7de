// Package prom holds what hookd's parts share about their Prometheus metrics: registering a
// part's collectors on the Registerer the part was given, with one error for the common mistake
// (two instances of a part on one registry). Each part defines its own collectors; nothing here
// is global.
package prom
