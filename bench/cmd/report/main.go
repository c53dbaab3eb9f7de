// Command report summarises the JSON results of bench/run.sh (one file per round, as
// bench/cmd/load writes them) as Markdown tables: per fsync policy and concurrency, the median of
// each target's rounds and the ratios between targets, then the targets and whether they
// are met, then the server's RSS against the number of requests in the long (soak) rounds.
//
//	go run ./bench/cmd/report bench/results/20260101-120000/*.json
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// result is the part of bench/cmd/load's output the report reads.
type result struct {
	Target        string  `json:"target"`
	Sync          string  `json:"sync"`
	Round         int     `json:"round"`
	Concurrency   int     `json:"concurrency"`
	WindowS       float64 `json:"window_s"`
	Requests      int     `json:"requests"`
	Errors        int     `json:"errors"`
	Flagged       bool    `json:"flagged"`
	ThroughputRPS float64 `json:"throughput_rps"`
	LatencyMS     struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
	} `json:"latency_ms"`
	MeanBodyBytes int     `json:"mean_body_bytes"`
	CPUPerReqUS   float64 `json:"server_cpu_per_req_us"`
	ServerCPUS    float64 `json:"server_cpu_s"`
	ClientCPUS    float64 `json:"client_cpu_s"`
	PeakRSSKB     int64   `json:"server_peak_rss_kb"`
	RSSSamples    []struct {
		TS       float64 `json:"t_s"`
		Requests int64   `json:"requests"`
		RSSKB    int64   `json:"rss_kb"`
	} `json:"server_rss_samples"`
	TotalSent int64 `json:"total_sent"`
	file      string
}

// Target labels as bench/run.sh names them, in the order of the letters.
var targets = []string{"hookd", "bare", "floor", "probot"}

var letter = map[string]string{"hookd": "a", "bare": "b", "floor": "c", "probot": "d"}

// name is a target's row label: "(a) hookd" for the targets, the bare name for variants.
func name(t string) string {
	if l := letter[t]; l != "" {
		return "(" + l + ") " + t
	}
	return t
}

// short is a target's label in a ratio: its letter, or a variant's name.
func short(t string) string {
	if l := letter[t]; l != "" {
		return l
	}
	return t
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: report RESULT.json...")
		os.Exit(2)
	}
	var rs []result
	for _, f := range os.Args[1:] {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(1)
		}
		var r result
		if err := json.Unmarshal(b, &r); err != nil {
			fmt.Fprintf(os.Stderr, "report: %s: %v\n", f, err)
			os.Exit(1)
		}
		r.file = f
		rs = append(rs, r)
	}
	write(os.Stdout, rs)
}

// summary is the median of one target's unflagged rounds in one setting.
type summary struct {
	rounds, flagged           int
	rps, p50, p99, cpu, rssMB float64
	clientCPU                 float64 // load generator's CPU share of the window, in cores
	serverCPU                 float64 // server's CPU share of the window, in cores
}

type key struct {
	sync string
	conc int
}

func write(w io.Writer, rs []result) {
	var soak []result
	groups := map[key]map[string][]result{}
	var keys []key
	for _, r := range rs {
		if strings.HasSuffix(r.Target, "-soak") {
			soak = append(soak, r)
			continue
		}
		k := key{r.Sync, r.Concurrency}
		if groups[k] == nil {
			groups[k] = map[string][]result{}
			keys = append(keys, k)
		}
		groups[k][r.Target] = append(groups[k][r.Target], r)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.sync != b.sync {
			return -strings.Compare(a.sync, b.sync) // interval before always
		}
		return a.conc - b.conc
	})

	var verdicts []string
	for _, k := range keys {
		g := groups[k]
		sums := map[string]summary{}
		fmt.Fprintf(w, "\n#### fsync %s, concurrency %d\n\n", k.sync, k.conc)
		fmt.Fprintln(w, "| target | rounds | req/s | p50 ms | p99 ms | server CPU µs/req | server cores | load-gen cores | peak RSS MiB |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		// The four targets in order, then variants (hookd-gc<N>) by name.
		var extra []string
		for t := range g {
			if letter[t] == "" {
				extra = append(extra, t)
			}
		}
		slices.Sort(extra)
		for _, t := range append(slices.Clone(targets), extra...) {
			if len(g[t]) == 0 {
				continue
			}
			s := summarise(g[t])
			sums[t] = s
			rounds := fmt.Sprint(s.rounds)
			if s.flagged > 0 {
				rounds += fmt.Sprintf(" (+%d flagged)", s.flagged)
			}
			fmt.Fprintf(w, "| %s | %s | %.0f | %.2f | %.2f | %.0f | %.2f | %.2f | %.1f |\n",
				name(t), rounds, s.rps, s.p50, s.p99, s.cpu, s.serverCPU, s.clientCPU, s.rssMB)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| ratio | req/s | p50 | p99 | CPU/req | peak RSS |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
		pairs := [][2]string{{"hookd", "floor"}, {"hookd", "bare"}, {"floor", "bare"}, {"hookd", "probot"}}
		for _, t := range extra {
			pairs = append(pairs, [2]string{t, "hookd"}, [2]string{t, "probot"})
		}
		for _, p := range pairs {
			a, okA := sums[p[0]]
			b, okB := sums[p[1]]
			if !okA || !okB {
				continue
			}
			fmt.Fprintf(w, "| %s/%s | %s | %s | %s | %s | %s |\n", short(p[0]), short(p[1]),
				ratio(a.rps, b.rps), ratio(a.p50, b.p50), ratio(a.p99, b.p99), ratio(a.cpu, b.cpu), ratio(a.rssMB, b.rssMB))
		}
		a, okA := sums["hookd"]
		if !okA {
			continue
		}
		if c, ok := sums["floor"]; ok {
			verdicts = append(verdicts, check(fmt.Sprintf("fsync %s, concurrency %d: (a) ≥ 0.8× (c) in throughput", k.sync, k.conc), a.rps >= 0.8*c.rps, fmt.Sprintf("%.2f×", a.rps/c.rps)))
		}
		if d, ok := sums["probot"]; ok {
			verdicts = append(verdicts, check(fmt.Sprintf("fsync %s, concurrency %d: (a) ≥ 2× (d) in throughput", k.sync, k.conc), a.rps >= 2*d.rps, fmt.Sprintf("%.2f×", a.rps/d.rps)))
		}
		if k.conc == 32 {
			verdicts = append(verdicts, check(fmt.Sprintf("fsync %s, concurrency 32: (a) p99 ≤ 20 ms", k.sync), a.p99 <= 20, fmt.Sprintf("%.1f ms", a.p99)))
		}
	}
	if len(verdicts) > 0 {
		fmt.Fprint(w, "\n#### The issue's targets (medians above)\n\n")
		for _, v := range verdicts {
			fmt.Fprintln(w, v)
		}
	}

	if len(soak) > 0 {
		fmt.Fprint(w, "\n#### Server RSS against requests (long rounds)\n\n")
		fmt.Fprintln(w, "| round | t s | requests | RSS MiB |")
		fmt.Fprintln(w, "|---|---:|---:|---:|")
		for _, r := range soak {
			n := len(r.RSSSamples)
			step := max(1, n/8)
			for i := 0; i < n; i += step {
				s := r.RSSSamples[i]
				fmt.Fprintf(w, "| %s fsync %s c%d | %.0f | %d | %.1f |\n", r.Target, r.Sync, r.Concurrency, s.TS, s.Requests, float64(s.RSSKB)/1024)
			}
			if n > 0 && (n-1)%step != 0 {
				s := r.RSSSamples[n-1]
				fmt.Fprintf(w, "| %s fsync %s c%d | %.0f | %d | %.1f |\n", r.Target, r.Sync, r.Concurrency, s.TS, s.Requests, float64(s.RSSKB)/1024)
			}
			fmt.Fprintf(w, "| %s fsync %s c%d: peak (VmHWM) | | %d | %.1f |\n", r.Target, r.Sync, r.Concurrency, r.TotalSent, float64(r.PeakRSSKB)/1024)
		}
	}
	// Short rounds of the durable targets: peak RSS against the requests each round served.
	for _, t := range []string{"hookd", "floor"} {
		var short []string
		for _, k := range keys {
			for _, r := range groups[k][t] {
				short = append(short, fmt.Sprintf("%s/c%d: %d → %.0f", k.sync, k.conc, r.TotalSent, float64(r.PeakRSSKB)/1024))
			}
		}
		if len(short) > 0 {
			fmt.Fprintf(w, "\n(%s) %s, peak RSS per short round (requests in the round → VmHWM MiB): %s\n", letter[t], t, strings.Join(short, "; "))
		}
	}
}

func check(what string, ok bool, got string) string {
	mark := "NOT MET"
	if ok {
		mark = "met"
	}
	return fmt.Sprintf("- %s: %s (%s)", what, mark, got)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func summarise(rs []result) summary {
	var s summary
	var rps, p50, p99, cpu, rss, ccpu, scpu []float64
	for _, r := range rs {
		if r.Flagged {
			s.flagged++
			continue
		}
		s.rounds++
		rps = append(rps, r.ThroughputRPS)
		p50 = append(p50, r.LatencyMS.P50)
		p99 = append(p99, r.LatencyMS.P99)
		cpu = append(cpu, r.CPUPerReqUS)
		rss = append(rss, float64(r.PeakRSSKB)/1024)
		if r.WindowS > 0 {
			ccpu = append(ccpu, r.ClientCPUS/r.WindowS)
			scpu = append(scpu, r.ServerCPUS/r.WindowS)
		}
	}
	s.rps, s.p50, s.p99, s.cpu, s.rssMB = median(rps), median(p50), median(p99), median(cpu), median(rss)
	s.clientCPU, s.serverCPU = median(ccpu), median(scpu)
	return s
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
