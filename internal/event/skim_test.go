package event

import (
	"testing"
)

// FuzzMembers: walking any input, valid JSON or not, nested as deep as it goes, never panics and
// never hands out a value outside the input.
func FuzzMembers(f *testing.F) {
	for _, s := range []string{
		`{"issue":{"number":1,"updated_at":"2026-11-26T09:00:00Z"},"x":[1,{"a":"b"}]}`,
		`{"`, `{"a`, `{"a"`, `{"a":`, `{"a":"`, `{"a":{`, `{"a":[`, `{"a\"":1}`, `{,"a":1}`,
		`{"a":1,}`, `null`, ``, `[]`, `{"a":"\u00e9","b":-1.5e3,"c":true,"d":null}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var walk func(v []byte, depth int)
		walk = func(v []byte, depth int) {
			if depth > 64 {
				return
			}
			_ = Members(v, func(k, val []byte) error {
				if len(val) > len(v) || len(k) > len(v) {
					t.Fatalf("member larger than its object: key %q val %q in %q", k, val, v)
				}
				_, _ = String(val)
				_, _ = Int(val)
				walk(val, depth+1)
				return nil
			})
		}
		walk(b, 0)
	})
}
