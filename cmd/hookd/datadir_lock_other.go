//go:build !unix

package main

// lockDataDir does nothing where flock is not available: do not start two hookd processes with
// an embedded JetStream on one data_dir there.
func lockDataDir(string) (func(), error) { return func() {}, nil }
