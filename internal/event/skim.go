package event

// Skimming a stored payload: the processor reads a few fields of every event (the issue or pull
// request it is about, for the staleness guard and the sweep's baseline) without decoding the
// rest. These expose the scanner ingest routes with (scan.go) for that.

// Members calls fn with the raw key (without quotes; escapes are not decoded) and the raw value
// of every member of the JSON object b, in order, stopping at fn's first error. b should be valid
// JSON, as every payload ingest stores is; on other input Members returns an error or reports
// some members, and never panics. A value that is not an object (null included) is an error.
func Members(b []byte, fn func(key, val []byte) error) error { return eachMember(b, fn) }

// String decodes a raw JSON string value as Members hands it out; null gives "".
func String(raw []byte) (string, error) { return jsonString(raw) }

// Int decodes a raw JSON integer value as Members hands it out; null gives 0.
func Int(raw []byte) (int64, error) { return jsonInt(raw) }
