package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// A small scanner over JSON that is already known to be valid (json.Valid): it walks the members
// of an object and hands out raw values without decoding what it skips. Webhook payloads are
// 10–30 KB of which hookd routes on a few dozen bytes; decoding them with encoding/json costs two
// full passes plus reflection, this costs json.Valid's one pass plus a skim.

var errShape = errors.New("unexpected JSON shape")

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index just past the JSON string starting at b[i] == '"' (len(b) if it
// is not closed).
func stringEnd(b []byte, i int) int {
	for i++; ; i += 2 { // past an escape: its second byte cannot end the string
		i = unescapedRun(b, i)
		if i >= len(b) {
			return len(b)
		}
		if b[i] == '"' {
			return i + 1
		}
	}
}

// valueEnd returns the index just past the JSON value starting at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = stringEnd(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	default:
		for ; i < len(b); i++ {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return len(b)
	}
}

// eachMember calls fn with the raw key (without quotes, escapes not decoded) and raw value of
// every member of the object b. b must be valid JSON; a value that is not an object is errShape.
func eachMember(b []byte, fn func(key, val []byte) error) error {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errShape
	}
	i++
	for {
		i = skipWS(b, i)
		if i >= len(b) {
			return errShape
		}
		if b[i] == '}' {
			return nil
		}
		if b[i] == ',' {
			i = skipWS(b, i+1)
		}
		if i >= len(b) || b[i] != '"' {
			return errShape
		}
		ke := stringEnd(b, i)
		if ke-1 < i+1 { // an unclosed key: only in input that is not valid JSON
			return errShape
		}
		key := b[i+1 : ke-1]
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return errShape
		}
		i = skipWS(b, i+1)
		if i >= len(b) {
			return errShape
		}
		ve := valueEnd(b, i)
		if err := fn(key, b[i:ve]); err != nil {
			return err
		}
		i = ve
	}
}

var null = []byte("null")

// jsonString decodes a raw JSON string value; null gives "".
func jsonString(raw []byte) (string, error) {
	if bytes.Equal(raw, null) {
		return "", nil
	}
	if len(raw) < 2 || raw[0] != '"' {
		return "", errShape
	}
	if bytes.IndexByte(raw, '\\') < 0 && utf8.Valid(raw) {
		return string(raw[1 : len(raw)-1]), nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// jsonInt decodes a raw JSON integer; null gives 0.
func jsonInt(raw []byte) (int64, error) {
	if bytes.Equal(raw, null) {
		return 0, nil
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		// Not strconv's error: it would quote the whole value, however long.
		if len(raw) > 40 {
			raw = append(raw[:40:40], "..."...)
		}
		return 0, fmt.Errorf("want an integer, got %s", raw)
	}
	return n, nil
}

// object runs eachMember on raw unless it is absent (nil) or null.
func object(raw []byte, fn func(key, val []byte) error) error {
	if raw == nil || bytes.Equal(raw, null) {
		return nil
	}
	return eachMember(raw, fn)
}

// loginOf reads {"login": ...} out of an account object.
func loginOf(raw []byte) (login string, err error) {
	err = object(raw, func(k, v []byte) error {
		if string(k) == "login" {
			login, err = jsonString(v)
			return err
		}
		return nil
	})
	return login, err
}
