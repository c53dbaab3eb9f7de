// Package procstat reads a process's CPU time and memory from /proc, and builds the payloads
// the bench programs store, for the processor and sweep bench programs under bench/cmd.
package procstat

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// hookd runs on.
const clockTicks = 100

// CPUSeconds is utime+stime of process pid (all its threads; 0 means this process).
func CPUSeconds(pid int) (float64, error) {
	p := "/proc/self/stat"
	if pid != 0 {
		p = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command name may hold spaces
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", p)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: unexpected format", p)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("%s: unexpected format", p)
	}
	return float64(ut+st) / clockTicks, nil
}

// Memory is a process's resident set from /proc/<pid>/status, in bytes.
type Memory struct {
	RSS  int64 // VmRSS: resident now
	Peak int64 // VmHWM: the peak resident set since the process started
}

// ReadMemory returns VmRSS and VmHWM of process pid (0: this process).
func ReadMemory(pid int) (Memory, error) {
	p := "/proc/self/status"
	if pid != 0 {
		p = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	f, err := os.Open(p)
	if err != nil {
		return Memory{}, err
	}
	defer f.Close()
	var m Memory
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, err := strconv.ParseInt(fs[0], 10, 64)
		if err != nil {
			continue
		}
		switch k {
		case "VmRSS":
			m.RSS = n << 10
		case "VmHWM":
			m.Peak = n << 10
		}
	}
	return m, sc.Err()
}

// MiB formats bytes as MiB with one decimal.
func MiB(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// Payload returns the real webhook payload body rewritten to belong to repository (id, owner/name)
// of installation inst, as the bench programs store it. id 0 leaves no repository.
func Payload(body []byte, inst, id int64, fullName string) ([]byte, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	owner, _, _ := strings.Cut(fullName, "/")
	m["installation"] = map[string]any{"id": inst, "account": map[string]any{"login": owner}}
	rp, _ := m["repository"].(map[string]any)
	if rp == nil {
		rp = map[string]any{}
	}
	rp["id"] = id
	rp["full_name"] = fullName
	rp["name"] = strings.TrimPrefix(fullName, owner+"/")
	rp["owner"] = map[string]any{"login": owner}
	m["repository"] = rp
	return json.Marshal(m)
}
