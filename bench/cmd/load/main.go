// Command load is the load generator of bench/run.sh: it sends correctly signed, real GitHub
// webhook payloads with unique delivery ids to one URL from a fixed number of concurrent workers,
// for a warm-up and then a measured window, and prints one JSON result.
//
// Each worker sends one request at a time over a keep-alive connection (closed loop), so the
// offered load is the concurrency, not a rate. Only requests that complete inside the measured
// window count towards throughput and latency. With -pid, it reads the server's CPU time
// (utime+stime from /proc/<pid>/stat) at both ends of the window and its peak RSS (VmHWM from
// /proc/<pid>/status) at the end, and samples VmRSS every -sample against the number of requests
// sent so far.
//
// Before it starts, it sends probe requests until one is answered with -expect (the server may
// still be starting), and fails if none is within -probe-timeout.
//
//	go run ./bench/cmd/load -url http://127.0.0.1:8080/webhook -secret s -conc 32 -pid 1234
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hookd/hookd/internal/payloads"
)

// defaultPayloads are 12–22 KB real payloads (sizes after the installation is injected).
const defaultPayloads = "issues.opened,issues.labeled,issue_comment.created,pull_request.opened-2"

type options struct {
	url          string
	secret       string
	conc         int
	warmup       time.Duration
	duration     time.Duration
	pid          int
	expect       int
	payloads     string
	installation int64
	probeTimeout time.Duration
	sample       time.Duration
	out          string
	target       string
	sync         string
	round        int
}

// template is one payload, signed once: the delivery id is a header, so the body and its
// signature are the same for every request sent with it.
type template struct {
	name, event string
	body        []byte
	sig         string
}

// Result is the JSON the command prints: one round against one target.
type Result struct {
	Target        string         `json:"target"`
	Sync          string         `json:"sync,omitempty"`
	Round         int            `json:"round"`
	Concurrency   int            `json:"concurrency"`
	URL           string         `json:"url"`
	StartedAt     time.Time      `json:"started_at"`
	WarmupS       float64        `json:"warmup_s"`
	WindowS       float64        `json:"window_s"` // measured window, as it actually lasted
	Requests      int            `json:"requests"` // completed with the expected status in the window
	Errors        int            `json:"errors"`   // wrong status or transport error, warm-up included
	StatusCounts  map[string]int `json:"status_counts"`
	ErrorSamples  []string       `json:"error_samples,omitempty"`
	Flagged       bool           `json:"flagged"` // errors > 0: do not trust this round
	ThroughputRPS float64        `json:"throughput_rps"`
	LatencyMS     Latency        `json:"latency_ms"`
	MeanBodyBytes int            `json:"mean_body_bytes"`
	ServerPID     int            `json:"server_pid,omitempty"`
	ServerCPUS    float64        `json:"server_cpu_s"`          // utime+stime during the window
	CPUPerReqUS   float64        `json:"server_cpu_per_req_us"` // ServerCPUS / Requests, microseconds
	ClientCPUS    float64        `json:"client_cpu_s"`          // this load generator, during the window
	PeakRSSKB     int64          `json:"server_peak_rss_kb"`    // VmHWM at the end of the round
	EndRSSKB      int64          `json:"server_rss_kb"`         // VmRSS at the end of the round
	RSSSamples    []RSSSample    `json:"server_rss_samples,omitempty"`
	TotalSent     int64          `json:"total_sent"` // requests completed, warm-up included
}

// Latency summarises the window's latencies in milliseconds.
type Latency struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

// RSSSample is the server's resident set after a number of requests.
type RSSSample struct {
	TS       float64 `json:"t_s"`
	Requests int64   `json:"requests"`
	RSSKB    int64   `json:"rss_kb"`
}

func main() {
	var o options
	flag.StringVar(&o.url, "url", "http://127.0.0.1:8080/webhook", "webhook URL")
	flag.StringVar(&o.secret, "secret", "", "webhook secret to sign with (required)")
	flag.IntVar(&o.conc, "conc", 32, "concurrent workers, each with one request in flight")
	flag.DurationVar(&o.warmup, "warmup", 3*time.Second, "warm-up, not measured")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured window")
	flag.IntVar(&o.pid, "pid", 0, "server process id for CPU and RSS (0: do not measure)")
	flag.IntVar(&o.expect, "expect", http.StatusAccepted, "expected HTTP status of every request")
	flag.StringVar(&o.payloads, "payloads", defaultPayloads, "comma-separated internal/payloads names, sent in turn")
	flag.Int64Var(&o.installation, "installation", 4242, "installation id injected into payloads that lack one")
	flag.DurationVar(&o.probeTimeout, "probe-timeout", 30*time.Second, "how long to wait for the server to answer a probe with -expect")
	flag.DurationVar(&o.sample, "sample", time.Second, "RSS sampling interval (with -pid)")
	flag.StringVar(&o.out, "out", "", "write the JSON result here as well as to stdout")
	flag.StringVar(&o.target, "target", "", "label of the target, copied into the result")
	flag.StringVar(&o.sync, "sync", "", "fsync policy label, copied into the result")
	flag.IntVar(&o.round, "round", 0, "round number, copied into the result")
	flag.Parse()
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	if o.secret == "" {
		return errors.New("-secret is required: the same webhook secret the server verifies with")
	}
	if o.conc < 1 || o.duration <= 0 || o.warmup < 0 {
		return errors.New("-conc must be at least 1, -duration positive, -warmup not negative")
	}
	tmpls, err := templates(o.payloads, []byte(o.secret), o.installation)
	if err != nil {
		return err
	}
	client := &http.Client{
		Transport: &http.Transport{
			MaxIdleConns:        2 * o.conc,
			MaxIdleConnsPerHost: 2 * o.conc,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
	}
	if err := probe(client, o, tmpls[0]); err != nil {
		return err
	}
	res, err := load(client, o, tmpls)
	if err != nil {
		return err
	}
	out, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	out = append(out, '\n')
	if o.out != "" {
		if err := os.WriteFile(o.out, out, 0o644); err != nil {
			return err
		}
	}
	_, err = os.Stdout.Write(out)
	return err
}

// templates loads and signs the payloads, injecting an installation where there is none, so that
// the servers see a tenant as they would from a GitHub App.
func templates(names string, secret []byte, installation int64) ([]template, error) {
	var out []template
	for _, name := range strings.Split(names, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		if !slices.Contains(payloads.Names(), name) {
			return nil, fmt.Errorf("-payloads: no payload %q; have %s", name, strings.Join(payloads.Names(), ", "))
		}
		body, err := withInstallation(payloads.Get(name), installation)
		if err != nil {
			return nil, fmt.Errorf("payload %s: %w", name, err)
		}
		m := hmac.New(sha256.New, secret)
		m.Write(body)
		out = append(out, template{name: name, event: payloads.Event(name), body: body, sig: "sha256=" + hex.EncodeToString(m.Sum(nil))})
	}
	if len(out) == 0 {
		return nil, errors.New("-payloads is empty")
	}
	return out, nil
}

// withInstallation inserts "installation" as the first key of the payload when it has none,
// leaving the rest of the bytes (and their formatting) as GitHub's example has them.
func withInstallation(body []byte, id int64) ([]byte, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, err
	}
	if _, ok := top["installation"]; ok {
		return body, nil
	}
	i := bytes.IndexByte(body, '{')
	ins := fmt.Sprintf(`{%s  "installation": {"id": %d, "node_id": "MDIzOkludGVncmF0aW9uSW5zdGFsbGF0aW9uNDI0Mg=="},`, "\n", id)
	out := append([]byte(ins), body[i+1:]...)
	if !json.Valid(out) {
		return nil, errors.New("payload is not valid JSON after injecting the installation")
	}
	return out, nil
}

// newRequest builds one delivery as GitHub sends it.
func newRequest(url string, t *template, delivery string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(t.body))
	h := req.Header
	h["Content-Type"] = []string{"application/json"}
	h["User-Agent"] = []string{"GitHub-Hookshot/bench"}
	h["Accept"] = []string{"*/*"}
	h["X-Github-Event"] = []string{t.event}
	h["X-Github-Delivery"] = []string{delivery}
	h["X-Github-Hook-Id"] = []string{"123456789"}
	h["X-Github-Hook-Installation-Target-Id"] = []string{"98765"}
	h["X-Github-Hook-Installation-Target-Type"] = []string{"integration"}
	h["X-Hub-Signature-256"] = []string{t.sig}
	return req
}

// uuid4 formats 16 random bytes as a version 4 UUID.
func uuid4(r *rand.ChaCha8) string {
	var b [16]byte
	_, _ = r.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

func newRand() *rand.ChaCha8 {
	var seed [32]byte
	for i := range 4 {
		v := rand.Uint64()
		for j := range 8 {
			seed[i*8+j] = byte(v >> (8 * j))
		}
	}
	return rand.NewChaCha8(seed)
}

// do sends one request and drains the answer.
func do(client *http.Client, req *http.Request) (int, string, error) {
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(body), err
}

func probe(client *http.Client, o options, t template) error {
	r := newRand()
	deadline := time.Now().Add(o.probeTimeout)
	var last string
	for time.Now().Before(deadline) {
		status, body, err := do(client, newRequest(o.url, &t, uuid4(r)))
		switch {
		case err != nil:
			last = err.Error()
		case status == o.expect:
			return nil
		default:
			last = fmt.Sprintf("status %d: %s", status, strings.TrimSpace(body))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not answer a signed %s delivery with %d within %s; last answer: %s", o.url, t.name, o.expect, o.probeTimeout, last)
}

// Phases of a round.
const (
	phaseWarmup int32 = iota
	phaseMeasure
	phaseDone
)

type worker struct {
	lat      []time.Duration
	statuses map[int]int
	errs     []string
	nerr     int
}

func load(client *http.Client, o options, tmpls []template) (*Result, error) {
	res := &Result{
		Target: o.target, Sync: o.sync, Round: o.round, Concurrency: o.conc, URL: o.url,
		StartedAt: time.Now().UTC(), WarmupS: o.warmup.Seconds(), ServerPID: o.pid,
		StatusCounts: map[string]int{},
	}
	var total int
	for _, t := range tmpls {
		total += len(t.body)
	}
	res.MeanBodyBytes = total / len(tmpls)

	var phase atomic.Int32
	var sent atomic.Int64
	workers := make([]*worker, o.conc)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{lat: make([]time.Duration, 0, 1<<14), statuses: map[int]int{}}
		workers[i] = w
		wg.Add(1)
		go func(seq int) {
			defer wg.Done()
			r := newRand()
			for phase.Load() != phaseDone {
				t := &tmpls[seq%len(tmpls)]
				seq++
				req := newRequest(o.url, t, uuid4(r))
				start := time.Now()
				status, body, err := do(client, req)
				d := time.Since(start)
				sent.Add(1)
				ph := phase.Load()
				if err != nil || status != o.expect {
					w.nerr++
					if err != nil {
						w.statuses[0]++
					} else {
						w.statuses[status]++
					}
					if len(w.errs) < 3 {
						if err == nil {
							err = fmt.Errorf("status %d: %s", status, strings.TrimSpace(body))
						}
						w.errs = append(w.errs, err.Error())
					}
					continue
				}
				w.statuses[status]++
				if ph == phaseMeasure {
					w.lat = append(w.lat, d)
				}
			}
		}(i)
	}

	t0 := time.Now()
	stopSampling := make(chan struct{})
	samplingDone := make(chan struct{})
	go func() {
		defer close(samplingDone)
		if o.pid == 0 {
			return
		}
		tick := time.NewTicker(o.sample)
		defer tick.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-tick.C:
				if rss, _, err := memory(o.pid); err == nil {
					res.RSSSamples = append(res.RSSSamples, RSSSample{TS: round(time.Since(t0).Seconds(), 3), Requests: sent.Load(), RSSKB: rss})
				}
			}
		}
	}()

	time.Sleep(o.warmup)
	cpu0, err := cpuSeconds(o.pid)
	if err != nil {
		return nil, err
	}
	self0, _ := cpuSeconds(os.Getpid())
	// Latencies collected before the switch belong to the warm-up; workers only append while
	// the phase is phaseMeasure, and read it after the request completes.
	phase.Store(phaseMeasure)
	w0 := time.Now()
	time.Sleep(o.duration)
	phase.Store(phaseDone)
	window := time.Since(w0)
	cpu1, err := cpuSeconds(o.pid)
	if err != nil {
		return nil, err
	}
	self1, _ := cpuSeconds(os.Getpid())
	if o.pid != 0 {
		if rss, hwm, err := memory(o.pid); err == nil {
			res.EndRSSKB, res.PeakRSSKB = rss, hwm
		}
	}
	close(stopSampling)
	<-samplingDone
	wg.Wait()

	var lat []time.Duration
	for _, w := range workers {
		lat = append(lat, w.lat...)
		res.Errors += w.nerr
		for s, n := range w.statuses {
			res.StatusCounts[strconv.Itoa(s)] += n
		}
		for _, e := range w.errs {
			if len(res.ErrorSamples) < 5 {
				res.ErrorSamples = append(res.ErrorSamples, e)
			}
		}
	}
	slices.Sort(lat)
	res.WindowS = round(window.Seconds(), 3)
	res.Requests = len(lat)
	res.TotalSent = sent.Load()
	res.Flagged = res.Errors > 0 || len(lat) == 0
	res.ThroughputRPS = round(float64(len(lat))/window.Seconds(), 1)
	if len(lat) > 0 {
		var sum time.Duration
		for _, d := range lat {
			sum += d
		}
		res.LatencyMS = Latency{
			P50: ms(quantile(lat, 0.50)), P90: ms(quantile(lat, 0.90)), P99: ms(quantile(lat, 0.99)),
			P999: ms(quantile(lat, 0.999)), Max: ms(lat[len(lat)-1]), Mean: ms(sum / time.Duration(len(lat))),
		}
	}
	if o.pid != 0 {
		res.ServerCPUS = round(cpu1-cpu0, 3)
		if len(lat) > 0 {
			res.CPUPerReqUS = round((cpu1-cpu0)/float64(len(lat))*1e6, 1)
		}
	}
	res.ClientCPUS = round(self1-self0, 3)
	return res, nil
}

// quantile is the nearest-rank quantile of sorted durations.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func ms(d time.Duration) float64 { return round(float64(d)/1e6, 3) }

func round(v float64, digits int) float64 {
	p := 1.0
	for range digits {
		p *= 10
	}
	return float64(int64(v*p+0.5)) / p
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports.
const clockTicks = 100

// cpuSeconds is utime+stime of a process (all its threads); 0 for pid 0.
func cpuSeconds(pid int) (float64, error) {
	if pid == 0 {
		return 0, nil
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("server CPU: %w (is -pid the server's process id?)", err)
	}
	// The command name (field 2) may contain spaces; fields after it are space-separated.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("server CPU: unexpected /proc/%d/stat", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("server CPU: short /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("server CPU: /proc/%d/stat: %w", pid, err)
	}
	return float64(ut+st) / clockTicks, nil
}

// memory returns VmRSS and VmHWM of a process, in KiB.
func memory(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		switch k {
		case "VmRSS":
			rss, _ = strconv.ParseInt(v, 10, 64)
		case "VmHWM":
			hwm, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return rss, hwm, nil
}
