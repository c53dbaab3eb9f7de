package main

import (
	"os"
	"testing"
)

// TestMain lets a test re-execute this test binary as the real hookd (HOOKD_TEST_MAIN=1 with
// HOOKD_TEST_ARGS), so that crash tests can kill -9 a hookd process.
func TestMain(m *testing.M) {
	if os.Getenv("HOOKD_TEST_MAIN") == "1" {
		os.Args = append([]string{"hookd"}, splitArgs(os.Getenv("HOOKD_TEST_ARGS"))...)
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func splitArgs(s string) []string {
	var out []string
	cur := ""
	for _, r := range s {
		if r == ' ' {
			if cur != "" {
				out = append(out, cur)
			}
			cur = ""
			continue
		}
		cur += string(r)
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}
