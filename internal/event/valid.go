package event

// validator checks JSON syntax exactly as encoding/json's json.Valid does (RFC 8259 grammar,
// nesting up to 10000, invalid UTF-8 tolerated), in one pass of tight loops instead of the
// standard library's per-byte state machine. While it validates the top-level object, it hands
// the raw value of each top-level member to a callback, so that ParsePayload reads the whole body
// once.
type validator struct {
	b     []byte
	i     int
	depth int
}

const maxDepth = 10000

// validObject validates b as one JSON value and, when it is an object, calls member for each of
// its members. It returns whether b is valid JSON and whether it is an object.
func validObject(b []byte, member func(key, val []byte)) (valid, isObject bool) {
	v := validator{b: b}
	v.ws()
	if v.i < len(b) && b[v.i] == '{' {
		isObject = true
		if !v.object(member) {
			return false, true
		}
	} else if !v.value() {
		return false, false
	}
	v.ws()
	return v.i == len(b), isObject
}

// wsSet has bit c set for each JSON whitespace byte c (all are <= ' ').
const wsSet = 1<<' ' | 1<<'\t' | 1<<'\n' | 1<<'\r'

// ws skips whitespace. Runs are short in webhook bodies (none, or one space after ':' and ','),
// so it is a byte loop that keeps its index in a register and tests each byte with one compare
// and one bit test.
func (v *validator) ws() {
	b, i := v.b, v.i
	for i < len(b) && b[i] <= ' ' && wsSet>>b[i]&1 != 0 {
		i++
	}
	v.i = i
}

func (v *validator) value() bool {
	if v.i >= len(v.b) {
		return false
	}
	switch c := v.b[v.i]; {
	case c == '{':
		return v.object(nil)
	case c == '[':
		return v.array()
	case c == '"':
		return v.str()
	case c == '-' || c >= '0' && c <= '9':
		return v.number()
	case c == 't':
		return v.lit("true")
	case c == 'f':
		return v.lit("false")
	case c == 'n':
		return v.lit("null")
	}
	return false
}

func (v *validator) lit(s string) bool {
	if len(v.b)-v.i < len(s) || string(v.b[v.i:v.i+len(s)]) != s {
		return false
	}
	v.i += len(s)
	return true
}

func (v *validator) object(member func(key, val []byte)) bool {
	if v.depth++; v.depth > maxDepth {
		return false
	}
	v.i++ // {
	v.ws()
	if v.i < len(v.b) && v.b[v.i] == '}' {
		v.i++
		v.depth--
		return true
	}
	for {
		if v.i >= len(v.b) || v.b[v.i] != '"' {
			return false
		}
		ks := v.i
		if !v.str() {
			return false
		}
		ke := v.i
		v.ws()
		if v.i >= len(v.b) || v.b[v.i] != ':' {
			return false
		}
		v.i++
		v.ws()
		vs := v.i
		if !v.value() {
			return false
		}
		if member != nil {
			member(v.b[ks+1:ke-1], v.b[vs:v.i])
		}
		v.ws()
		if v.i >= len(v.b) {
			return false
		}
		switch v.b[v.i] {
		case ',':
			v.i++
			v.ws()
		case '}':
			v.i++
			v.depth--
			return true
		default:
			return false
		}
	}
}

func (v *validator) array() bool {
	if v.depth++; v.depth > maxDepth {
		return false
	}
	v.i++ // [
	v.ws()
	if v.i < len(v.b) && v.b[v.i] == ']' {
		v.i++
		v.depth--
		return true
	}
	for {
		if !v.value() {
			return false
		}
		v.ws()
		if v.i >= len(v.b) {
			return false
		}
		switch v.b[v.i] {
		case ',':
			v.i++
			v.ws()
		case ']':
			v.i++
			v.depth--
			return true
		default:
			return false
		}
	}
}

// str validates the string starting at v.b[v.i] == '"' and moves past it. Runs of plain
// contents are skipped eight bytes at a time (plainRun); the byte that stops a run is the closing
// quote, an escape (which must be valid) or a control byte (invalid). Bytes >= 0x80 are plain:
// like json.Valid, invalid UTF-8 is tolerated.
func (v *validator) str() bool {
	b := v.b
	i := v.i + 1
	for {
		i = plainRun(b, i)
		if i >= len(b) {
			return false
		}
		switch b[i] {
		case '"':
			v.i = i + 1
			return true
		case '\\':
			if i+1 >= len(b) {
				return false
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+6 > len(b) {
					return false
				}
				for _, h := range b[i+2 : i+6] {
					if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
						return false
					}
				}
				i += 6
			default:
				return false
			}
		default: // a control byte
			return false
		}
	}
}

func (v *validator) number() bool {
	b, i := v.b, v.i
	digits := func() bool {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > s
	}
	if b[i] == '-' {
		i++
	}
	if i >= len(b) {
		return false
	}
	if b[i] == '0' {
		i++
	} else if !digits() {
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return false
		}
	}
	v.i = i
	return true
}
