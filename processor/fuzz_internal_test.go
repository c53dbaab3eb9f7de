package processor

import (
	"regexp"
	"testing"

	"github.com/hookd/hookd/internal/payloads"
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

// FuzzItemOf: any payload decodes to an item or to nothing, without panicking.
func FuzzItemOf(f *testing.F) {
	for _, n := range []string{"issues.opened", "pull_request.opened", "issue_comment.created", "push"} {
		f.Add(payloads.Get(n))
	}
	f.Add([]byte(`{"issue":{"number":1,"updated_at":"bad"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := itemOf(b)
		if r.Number < 0 {
			t.Logf("negative number %d", r.Number) // GitHub never sends one; harmless
		}
	})
}
