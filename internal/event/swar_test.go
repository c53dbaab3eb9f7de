package event

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// naiveStr is validator.str as a byte-at-a-time loop (the implementation before the word-at-a-time
// scan): the index just past the string starting at b[0] == '"', and whether it is valid.
func naiveStr(b []byte) (end int, ok bool) {
	for i := 1; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c == '\\':
			if i+1 >= len(b) {
				return 0, false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return 0, false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return 0, false
					}
				}
				i += 6
			default:
				return 0, false
			}
		case c < 0x20:
			return 0, false
		default:
			i++
		}
	}
	return 0, false
}

// naiveStringEnd is stringEnd as a byte-at-a-time loop.
func naiveStringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// stringCases builds JSON strings around the 8-byte word boundaries of the scanners: contents of
// every length 0..17 (plain, or with a byte ≥ 0x80), and contents of 16 bytes with one byte
// (every value 0..255, and each escape, valid or not) at each offset 0..15; each closed or not,
// and followed by tails of 0..9 bytes so that the end of the buffer falls at every position of
// the last word.
func stringCases() []string {
	var contents []string
	for n := 0; n <= 17; n++ {
		contents = append(contents, strings.Repeat("a", n), strings.Repeat("é", n/2)+strings.Repeat("b", n%2), strings.Repeat("\xff", n))
	}
	escapes := []string{`\"`, `\\`, `\/`, `\b`, `\f`, `\n`, `\r`, `\t`, `\u00e9`, `\uD83D`, `\x`, `\u00g0`, `\u12`, `\`, `\'`, `\0`}
	for k := 0; k < 16; k++ {
		for c := 0; c < 256; c++ {
			s := []byte(strings.Repeat("a", 16))
			s[k] = byte(c)
			contents = append(contents, string(s))
		}
		for _, e := range escapes {
			contents = append(contents, (strings.Repeat("a", 16) + e)[:k]+e+strings.Repeat("a", 16-k))
		}
	}
	var out []string
	for _, c := range contents {
		for t := 0; t <= 9; t++ {
			tail := strings.Repeat(" ", t)
			out = append(out, `"`+c+`"`+tail, `"`+c+tail)
		}
	}
	return out
}

func TestStringScanners(t *testing.T) {
	t.Parallel()
	for _, s := range stringCases() {
		b := []byte(s)
		wantEnd, wantOK := naiveStr(b)
		v := validator{b: b}
		if ok := v.str(); ok != wantOK || ok && v.i != wantEnd {
			t.Errorf("validator.str(%q) = %v at %d, want %v at %d", s, ok, v.i, wantOK, wantEnd)
		}
		if got, want := stringEnd(b, 0), naiveStringEnd(b, 0); got != want {
			t.Errorf("stringEnd(%q) = %d, want %d", s, got, want)
		}
		if got, want := plainRun(b, 1), strings.IndexFunc(s[1:], func(r rune) bool { return r < 0x20 || r == '"' || r == '\\' }); !(got == len(b) && want < 0 || got == want+1) {
			t.Errorf("plainRun(%q, 1) = %d, want %d", s, got, want+1)
		}
		if got, want := unescapedRun(b, 1), strings.IndexAny(s[1:], `"\`); !(got == len(b) && want < 0 || got == want+1) {
			t.Errorf("unescapedRun(%q, 1) = %d, want %d", s, got, want+1)
		}
		doc := strings.TrimRight(s, " ")
		if got, _ := validObject([]byte(doc), nil); got != json.Valid([]byte(doc)) {
			t.Errorf("validObject(%q) = %v, json.Valid says %v", doc, got, !got)
		}
	}
}

// TestParsePayloadStringBoundaries: routing strings whose special bytes fall at each offset of a
// word decode as encoding/json decodes them, and a control byte is refused wherever it is.
func TestParsePayloadStringBoundaries(t *testing.T) {
	t.Parallel()
	for k := 0; k < 16; k++ {
		for _, special := range []string{`\"`, `\\`, `\n`, `\u00e9`, "\x01", "\x1f", "\xff", "é"} {
			login := strings.Repeat("a", k) + special + strings.Repeat("b", 15-k)
			for pad := 0; pad < 8; pad++ {
				body := []byte(fmt.Sprintf(`{"padding":%q,"sender":{"login":"%s","type":"User"}}`, strings.Repeat("p", pad), login))
				var got Meta
				err := ParsePayload(&got, body)
				want, werr := reference(body)
				if (err != nil) != (werr != nil) {
					t.Fatalf("ParsePayload(%q) error %v, encoding/json error %v", body, err, werr)
				}
				if err == nil && got != want {
					t.Fatalf("ParsePayload(%q):\n got %+v\nwant %+v", body, got, want)
				}
			}
		}
	}
}
