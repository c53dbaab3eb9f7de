package processor

import (
	"regexp"
	"testing"
)

var validKVKey = regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)

// FuzzLedgerKey: whatever key a handler passes, the ledger key is a valid KV key token that
// cannot break out of its prefix (no leading, trailing or double dots), and readable keys stay
// as they are.
func FuzzLedgerKey(f *testing.F) {
	for _, s := range []string{"comment.welcome", "a b", "..", "labels.add.1.bug,triage", "é", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, key string) {
		k := ledgerKey(key)
		if !validKVKey.MatchString(k) || k[0] == '.' || k[len(k)-1] == '.' || regexp.MustCompile(`\.\.`).MatchString(k) {
			t.Fatalf("ledgerKey(%q) = %q: not a valid key token", key, k)
		}
		if k != ledgerKey(key) {
			t.Fatal("not deterministic")
		}
	})
}
