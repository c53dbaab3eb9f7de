// Command sweep10k measures the drift sweep over many repositories on one replica: the time,
// memory and GitHub API calls of sweeping -installations × -repos repositories (default 10 × 1000)
// when nothing changed.
//
// The GitHub fake (internal/githubfake) runs in a child process (the command re-executes itself),
// so this process holds what a hookd replica's sweep holds: the embedded nats-server
// (broker.StartEmbedded, hookd's topology) and the sweep (sweep.New; its exported pass
// Service.SweepRepository, which the planner runs per repository), talking to the fake over
// loopback HTTP through ghapp like hookd does. The repositories have no issues.
//
// Passes, each over every repository with -concurrency workers:
//
//	first      no state yet: every repository is listed (a paid call) and its ETag stored
//	unchanged  the sweep's clock moved by sweep.interval (5m) so every repository is due; each
//	           pass sends the stored ETag and GitHub (the fake) answers 304 — the steady state
//	not-due    straight after: every repository is skipped as not due (the once-a-minute
//	           wake-ups of the per-repository workers between sweeps)
//
// Reported per pass: wall time, repositories per second, process CPU, the fake's accounting
// (requests that cost rate limit vs. 304s, per installation), the share of an installation's
// hourly rate limit the pass used, peak RSS during the pass (VmHWM, reset before each pass
// through /proc/self/clear_refs) and the Go heap after it.
//
//	go run ./bench/cmd/sweep10k
//	go run ./bench/cmd/sweep10k -installations 1 -repos 10000    # one installation with 10,000
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/hookd/hookd/bench/internal/procstat"
	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/event"
	"github.com/hookd/hookd/internal/ghapp"
	"github.com/hookd/hookd/internal/githubfake"
	"github.com/hookd/hookd/sweep"
)

// world is what the fake child reports on stdout.
type world struct {
	URL           string         `json:"url"`
	AppID         int64          `json:"app_id"`
	PrivateKeyPEM string         `json:"private_key_pem"`
	BotLogin      string         `json:"bot_login"`
	RateLimit     int            `json:"rate_limit"`
	Tenants       []event.Tenant `json:"tenants"`
	Installations []int64        `json:"installations"`
}

func main() {
	role := flag.String("role", "", "internal: fake (serve the GitHub fake)")
	installations := flag.Int("installations", 10, "installations")
	repos := flag.Int("repos", 1000, "repositories per installation")
	concurrency := flag.Int("concurrency", 32, "repositories swept at once")
	rateLimit := flag.Int("rate-limit", 5000, "the fake's hourly rate limit per installation (GitHub: 5,000, more for large installations, up to 12,500)")
	syncPolicy := flag.String("sync", broker.SyncInterval, "nats.sync of the embedded server")
	flag.Parse()
	var err error
	if *role == "fake" {
		err = serveFake(*installations, *repos, *rateLimit)
	} else {
		err = run(*installations, *repos, *concurrency, *rateLimit, *syncPolicy)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sweep10k:", err)
		os.Exit(1)
	}
}

// serveFake runs the GitHub fake until stdin closes; GET /_bench/stats?id=N answers its Stats.
func serveFake(installations, repos, rateLimit int) error {
	f, err := githubfake.New(githubfake.Options{RateLimit: rateLimit})
	if err != nil {
		return err
	}
	w := world{RateLimit: rateLimit}
	for i := range installations {
		names := make([]string, repos)
		for j := range names {
			names[j] = fmt.Sprintf("r%05d", j)
		}
		in, err := f.AddInstallation(fmt.Sprintf("org%02d", i), names...)
		if err != nil {
			return err
		}
		w.Installations = append(w.Installations, in.ID)
		for _, r := range in.Repos {
			w.Tenants = append(w.Tenants, event.Tenant{InstallationID: in.ID, RepositoryID: r.ID, Owner: r.Owner, Name: r.Name})
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/_bench/stats", func(rw http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
		_ = json.NewEncoder(rw).Encode(f.Stats(id))
	})
	mux.Handle("/", f)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	f.SetBaseURL(srv.URL + "/")
	a := f.App()
	w.URL, w.AppID, w.PrivateKeyPEM, w.BotLogin = f.URL(), a.ID, string(a.PrivateKeyPEM), a.BotLogin
	b, err := json.Marshal(w)
	if err != nil {
		return err
	}
	fmt.Println(string(b))
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent goes
	return nil
}

type fakeProc struct {
	world
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

func startFake(installations, repos, rateLimit int) (*fakeProc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-role", "fake", "-installations", strconv.Itoa(installations),
		"-repos", strconv.Itoa(repos), "-rate-limit", strconv.Itoa(rateLimit))
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	fp := &fakeProc{cmd: cmd, stdin: stdin}
	line, err := bufio.NewReaderSize(stdout, 1<<20).ReadBytes('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("fake: %w", err)
	}
	if err := json.Unmarshal(line, &fp.world); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("fake: %w", err)
	}
	return fp, nil
}

func (fp *fakeProc) stop() {
	_ = fp.stdin.Close()
	_ = fp.cmd.Wait()
}

func (fp *fakeProc) stats(id int64) (githubfake.Stats, error) {
	resp, err := http.Get(fp.URL + "_bench/stats?id=" + strconv.FormatInt(id, 10))
	if err != nil {
		return githubfake.Stats{}, err
	}
	defer resp.Body.Close()
	var s githubfake.Stats
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// clock is the sweep's clock: real time plus an offset moved between passes.
type clock struct{ offset atomic.Int64 }

func (c *clock) now() time.Time            { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) advance(d time.Duration)   { c.offset.Add(int64(d)) }
func resetPeak() error                     { return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }
func mib(b uint64) string                  { return procstat.MiB(int64(b)) }
func pct(n, d int) float64                 { return 100 * float64(n) / float64(d) }
func perSecond(n int, d time.Duration) int { return int(float64(n) / d.Seconds()) }

// pass is one sweep over every repository.
type pass struct {
	name                  string
	wall                  time.Duration
	cpu                   float64
	requests, notModified int // fake, all installations
	maxInstRequests       int // the most any one installation spent
	outcomes              map[string]int
	errors                int
	peak                  int64
	heap                  uint64
}

func run(installations, repos, concurrency, rateLimit int, syncPolicy string) error {
	fp, err := startFake(installations, repos, rateLimit)
	if err != nil {
		return err
	}
	defer fp.stop()
	dir, err := os.MkdirTemp("", "sweep10k-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	log := zerolog.New(os.Stderr).Level(zerolog.WarnLevel).With().Timestamp().Logger()
	cfg := broker.Config{DataDir: dir, Listen: "127.0.0.1:0", Sync: syncPolicy}
	cfg.Defaults()
	srv, err := broker.StartEmbedded(cfg, log)
	if err != nil {
		return err
	}
	defer func() { srv.Shutdown(); srv.WaitForShutdown() }()
	ctx := context.Background()
	nc, js, err := broker.Open(ctx, srv.ClientURL(), cfg, "sweep10k", log)
	if err != nil {
		return err
	}
	defer nc.Close()
	app, err := ghapp.New(ghapp.Config{AppID: fp.AppID, PrivateKey: fp.PrivateKeyPEM, APIURL: fp.URL}, ghapp.Options{})
	if err != nil {
		return err
	}
	var clk clock
	reg := prometheus.NewRegistry()
	off := false
	svc, err := sweep.New(ctx, sweep.Config{Redeliver: &off}, sweep.Options{
		GitHub: app, JS: js, BotLogin: fp.BotLogin, Log: log, Registerer: reg, Now: clk.now,
	})
	if err != nil {
		return err
	}
	n := len(fp.Tenants)
	fmt.Printf("sweep10k: %d installations × %d repositories = %d; %d at once; fake rate limit %d/h per installation; nats sync %s\n",
		installations, repos, n, concurrency, rateLimit, syncPolicy)

	var passes []pass
	doPass := func(name string) error {
		before := map[int64]githubfake.Stats{}
		for _, id := range fp.Installations {
			if before[id], err = fp.stats(id); err != nil {
				return err
			}
		}
		outcomes0 := outcomes(reg)
		runtime.GC()
		if err := resetPeak(); err != nil {
			return fmt.Errorf("reset VmHWM: %w", err)
		}
		cpu0, _ := procstat.CPUSeconds(0)
		t0 := time.Now()
		var next atomic.Int64
		var errs atomic.Int64
		var firstErr sync.Once
		var wg sync.WaitGroup
		for range concurrency {
			wg.Go(func() {
				for {
					i := int(next.Add(1) - 1)
					if i >= n {
						return
					}
					if err := svc.SweepRepository(ctx, fp.Tenants[i]); err != nil {
						errs.Add(1)
						firstErr.Do(func() { fmt.Fprintln(os.Stderr, "sweep10k: first error:", err) })
					}
				}
			})
		}
		wg.Wait()
		p := pass{name: name, wall: time.Since(t0), errors: int(errs.Load())}
		cpu1, _ := procstat.CPUSeconds(0)
		p.cpu = cpu1 - cpu0
		mem, _ := procstat.ReadMemory(0)
		p.peak = mem.Peak
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		p.heap = ms.HeapAlloc
		for _, id := range fp.Installations {
			after, err := fp.stats(id)
			if err != nil {
				return err
			}
			req := after.Requests - before[id].Requests
			p.requests += req
			p.notModified += after.NotModified - before[id].NotModified
			p.maxInstRequests = max(p.maxInstRequests, req)
		}
		p.outcomes = map[string]int{}
		for k, v := range outcomes(reg) {
			if d := v - outcomes0[k]; d > 0 {
				p.outcomes[k] = d
			}
		}
		fmt.Printf("  %-9s %6.2fs  %6d repos/s  CPU %5.2fs (%4.0f µs/repo)  paid requests %5d (%.2f/repo)  304s %5d (%.2f/repo)  max share of one installation's hourly limit %.1f%%  peak RSS %s MiB  heap after %s MiB  outcomes %v  errors %d\n",
			name, p.wall.Seconds(), perSecond(n, p.wall), p.cpu, p.cpu/float64(n)*1e6, p.requests, float64(p.requests)/float64(n),
			p.notModified, float64(p.notModified)/float64(n), pct(p.maxInstRequests, rateLimit), procstat.MiB(p.peak), mib(p.heap), p.outcomes, p.errors)
		passes = append(passes, p)
		return nil
	}
	if err := doPass("first"); err != nil {
		return err
	}
	clk.advance(5 * time.Minute)
	if err := doPass("unchanged"); err != nil {
		return err
	}
	if err := doPass("not-due"); err != nil {
		return err
	}
	clk.advance(5 * time.Minute)
	if err := doPass("unchanged"); err != nil {
		return err
	}

	fmt.Printf("\n| pass | wall s | repos/s | CPU µs/repo | paid requests/repo | 304s/repo | max share of an installation's hourly limit | peak RSS MiB | Go heap after MiB | outcomes |\n")
	fmt.Printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, p := range passes {
		fmt.Printf("| %s | %.2f | %d | %.0f | %.2f | %.2f | %.1f%% | %s | %s | %v |\n", p.name, p.wall.Seconds(), perSecond(n, p.wall),
			p.cpu/float64(n)*1e6, float64(p.requests)/float64(n), float64(p.notModified)/float64(n), pct(p.maxInstRequests, rateLimit),
			procstat.MiB(p.peak), mib(p.heap), p.outcomes)
	}
	var app0 githubfake.Stats
	if app0, err = fp.stats(0); err == nil {
		fmt.Printf("\napp (JWT) calls over the run: %d requests, %d tokens minted\n", app0.Requests, app0.TokensMinted)
	}
	if m, err := procstat.ReadMemory(0); err == nil {
		fmt.Printf("process RSS at the end: %s MiB\n", procstat.MiB(m.RSS))
	}
	return nil
}

// outcomes reads hookd_sweep_passes_total by outcome.
func outcomes(reg *prometheus.Registry) map[string]int {
	out := map[string]int{}
	mfs, err := reg.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != "hookd_sweep_passes_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" {
					out[l.GetValue()] = int(m.GetCounter().GetValue())
				}
			}
		}
	}
	return out
}
