package event

import (
	"encoding/binary"
	"math/bits"
)

// Word-at-a-time ("SWAR") tests for the string scanners in valid.go and scan.go. Webhook bodies
// are mostly string contents (bodies, URLs), and nearly every byte of a string is plain: not '"',
// not '\\', not a control byte. These functions look at eight bytes per step, loaded as one
// little-endian uint64 so that byte k of the slice is bits 8k..8k+7 of the word.
//
// Each test uses the has-zero-byte trick: for a word x, (x - 0x01…01) &^ x & 0x80…80 sets the high
// bit of every zero byte of x. A byte that is not zero can be flagged too, but only above (later
// in memory than) a zero byte, through the borrow the zero byte starts; no zero byte is ever
// missed. So the lowest flagged byte is always a true hit (also of an OR of such tests: its lowest
// flag is the lowest of their lowest flags), and the callers, which only ever use the lowest flag
// and then look at that byte itself, are exact. The same holds for has-less-than:
// (x - n·0x01…01) &^ x & 0x80…80 flags every byte below n (for n ≤ 0x80); bytes ≥ 0x80 are never
// flagged (their high bit is cleared by &^ x), so invalid UTF-8 passes as plain bytes, as before.

const (
	swarOnes   = 0x0101010101010101
	swarHighs  = 0x8080808080808080
	swarQuote  = swarOnes * '"'
	swarBslash = swarOnes * '\\'
	swarSpace  = swarOnes * 0x20
)

// strSpecial flags, in the high bit of each byte, the bytes of w that end a run of plain string
// contents: '"', '\\' and control bytes (< 0x20). Only the lowest flag is exact (see above).
func strSpecial(w uint64) uint64 {
	q := w ^ swarQuote
	s := w ^ swarBslash
	return (((q - swarOnes) &^ q) | ((s - swarOnes) &^ s) | ((w - swarSpace) &^ w)) & swarHighs
}

// quoteOrBackslash flags the bytes of w that are '"' or '\\'. Only the lowest flag is exact.
func quoteOrBackslash(w uint64) uint64 {
	q := w ^ swarQuote
	s := w ^ swarBslash
	return (((q - swarOnes) &^ q) | ((s - swarOnes) &^ s)) & swarHighs
}

// plainRun returns the index of the first byte at or after b[i] that is '"', '\\' or below 0x20,
// or len(b) if there is none (or i if i >= len(b)).
func plainRun(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	s := b[i:]
	for len(s) >= 16 {
		m0, m1 := strSpecial(binary.LittleEndian.Uint64(s)), strSpecial(binary.LittleEndian.Uint64(s[8:]))
		if m0|m1 != 0 {
			if m0 != 0 {
				return len(b) - len(s) + bits.TrailingZeros64(m0)>>3
			}
			return len(b) - len(s) + 8 + bits.TrailingZeros64(m1)>>3
		}
		s = s[16:]
	}
	for len(s) >= 8 {
		if m := strSpecial(binary.LittleEndian.Uint64(s)); m != 0 {
			return len(b) - len(s) + bits.TrailingZeros64(m)>>3
		}
		s = s[8:]
	}
	for k, c := range s {
		if c < 0x20 || c == '"' || c == '\\' {
			return len(b) - len(s) + k
		}
	}
	return len(b)
}

// unescapedRun returns the index of the first byte at or after b[i] that is '"' or '\\', or
// len(b) if there is none (or i if i >= len(b)).
func unescapedRun(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	s := b[i:]
	for len(s) >= 8 {
		if m := quoteOrBackslash(binary.LittleEndian.Uint64(s)); m != 0 {
			return len(b) - len(s) + bits.TrailingZeros64(m)>>3
		}
		s = s[8:]
	}
	for k, c := range s {
		if c == '"' || c == '\\' {
			return len(b) - len(s) + k
		}
	}
	return len(b)
}
