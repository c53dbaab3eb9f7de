package rules

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hookd/hookd/planner"
)

// runRule loads a rule with a run step executing the given script body.
func runRule(t *testing.T, body, extra string, opts Options) *Rule {
	t.Helper()
	p := script(t, body)
	e := load(t, fmt.Sprintf("rules:\n- name: agent\n  on: [issues]\n  run:\n    command: [%q, arg1, 'two words']\n%s", p, extra), opts)
	return e.Rule("agent")
}

func TestRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("stdin, argv and environment", func(t *testing.T) {
		t.Parallel()
		r := runRule(t, `
printf 'args=%s|%s\n' "$1" "$2"
printf 'stdin='; cat | wc -c
printf 'file='; wc -c < "$HOOKD_EVENT_PATH"
printf 'pwd=%s\n' "$(pwd)"
env | sort
`, "    env: {MODEL: qwen}\n", Options{})
		in := input(t, "issues.opened", nil)
		res, err := r.Execute(ctx, in, Deps{})
		if err != nil {
			t.Fatal(err)
		}
		out := res.Run.Stdout
		n := strconv.Itoa(len(in.Payload))
		for _, want := range []string{
			"args=arg1|two words\n", "stdin=" + n + "\n", "file=" + n + "\n",
			"HOOKD_EVENT=issues\n", "HOOKD_ACTION=opened\n", "HOOKD_DELIVERY=d-issues.opened\n",
			"HOOKD_REPOSITORY=Codertocat/Hello-World\n", "HOOKD_ISSUE_NUMBER=1\n", "HOOKD_RULE=agent\n",
			"HOOKD_SENDER=Codertocat\n", "MODEL=qwen\n", "PATH=",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		allowed := []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "PWD", "OLDPWD", "SHLVL", "_", "MODEL"}
		for _, line := range strings.Split(out, "\n") {
			k, _, ok := strings.Cut(line, "=")
			if !ok || strings.HasPrefix(k, "HOOKD_") || strings.Contains(k, " ") || slices.Contains([]string{"args", "stdin", "file", "pwd"}, k) {
				continue
			}
			if !slices.Contains(allowed, k) {
				t.Errorf("command inherited %s", k)
			}
			if k == "GITHUB_TOKEN" {
				t.Error("token without token: true")
			}
		}
		// The scratch directory is removed after the run.
		_, dir, _ := strings.Cut(out, "pwd=")
		dir, _, _ = strings.Cut(dir, "\n")
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("scratch dir %s still there: %v", dir, err)
		}
	})

	t.Run("non-zero exit fails with stderr", func(t *testing.T) {
		t.Parallel()
		r := runRule(t, "echo partial; echo 'model exploded' >&2; exit 3\n", "", Options{})
		res, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if err == nil || !strings.Contains(err.Error(), "exited with status 3: model exploded") {
			t.Fatalf("err %v", err)
		}
		if c, _ := planner.Classify(err, time.Now()); c != planner.Unknown {
			t.Errorf("class %v, want unknown (long backoff)", c)
		}
		if res.Run.ExitCode != 3 || res.Run.Stdout != "partial\n" {
			t.Errorf("output %+v", res.Run)
		}
	})

	t.Run("exit 75 is transient", func(t *testing.T) {
		t.Parallel()
		r := runRule(t, "exit 75\n", "", Options{})
		_, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if c, _ := planner.Classify(err, time.Now()); c != planner.TransientClass {
			t.Fatalf("err %v class %v", err, c)
		}
	})

	t.Run("timeout kills the process group", func(t *testing.T) {
		t.Parallel()
		pidfile := filepath.Join(t.TempDir(), "pid")
		r := runRule(t, `sleep 60 & echo $! > "$PIDFILE"; wait`,
			fmt.Sprintf("    timeout: 300ms\n    env: {PIDFILE: %q}\n", pidfile), Options{})
		start := time.Now()
		_, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if err == nil || !strings.Contains(err.Error(), "timed out after 300ms") {
			t.Fatalf("err %v", err)
		}
		if c, _ := planner.Classify(err, time.Now()); c != planner.TransientClass {
			t.Errorf("class %v", c)
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("took %s", took)
		}
		b, err := os.ReadFile(pidfile)
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if alive(pid) {
			t.Errorf("background child %d survived the timeout", pid)
		}
	})

	t.Run("cancellation kills the command", func(t *testing.T) {
		t.Parallel()
		r := runRule(t, "echo started; exec sleep 60\n", "", Options{})
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		_, err := r.Execute(cctx, input(t, "issues.opened", nil), Deps{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v", err)
		}
		if took := time.Since(start); took > 4*time.Second { // under killGrace: SIGTERM stopped it
			t.Errorf("took %s: the command was not stopped when its context was cancelled", took)
		}
	})

	t.Run("a step cut short by a lost concurrency slot is transient", func(t *testing.T) {
		t.Parallel()
		r := runRule(t, "echo started; exec sleep 60\n", "  concurrency: 1\n", Options{})
		_, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{Semaphore: losingSemaphore{after: 200 * time.Millisecond}})
		if c, _ := planner.Classify(err, time.Now()); !errors.Is(err, ErrLeaseLost) || c != planner.TransientClass {
			t.Fatalf("err %v class %v, want a transient lost-slot error", err, c)
		}
	})

	t.Run("every slot taken until the steps' time would run short: handed back, not run late", func(t *testing.T) {
		t.Parallel()
		r := runRule(t, "echo ran\n", "  concurrency: 1\n", Options{})
		sem := &busySemaphore{}
		deadline := time.Now().Add(r.timeout())
		hctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		res, err := r.Execute(hctx, input(t, "issues.opened", nil), Deps{Semaphore: sem})
		if c, w := planner.Classify(err, time.Now()); !errors.Is(err, ErrSlotsBusy) || c != planner.TransientClass || w != SlotRetry {
			t.Fatalf("err %v class %v wait %s, want transient, tried again in %s", err, c, w, SlotRetry)
		}
		if want := deadline.Add(-r.cfg.Run.Timeout); !sem.waitUntil.Equal(want) {
			t.Errorf("waited until %s, want %s: the handler's deadline less the run's timeout", sem.waitUntil, want)
		}
		if res.Run != nil && res.Run.Stdout != "" {
			t.Errorf("the command ran: %+v", res.Run)
		}
	})

	t.Run("output over the cap is truncated, not failed", func(t *testing.T) {
		t.Parallel()
		r := runRule(t, "printf '%01000d' 0; printf 'é'; printf '%04000d' 0; head -c 3000 /dev/zero >&2\n", "",
			Options{MaxStdout: 1001, MaxStderr: 100})
		res, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if err != nil {
			t.Fatal(err)
		}
		want := strings.Repeat("0", 1000) + "\n\n… [hookd: output truncated: 4001 more bytes over the 1001-byte cap]"
		if res.Run.Stdout != want || !res.Run.Truncated {
			t.Errorf("stdout %q", res.Run.Stdout[990:])
		}
		if !strings.Contains(res.Run.Stderr, "2900 more bytes") {
			t.Errorf("stderr note missing: %q", res.Run.Stderr[100:])
		}
	})

	t.Run("missing program is permanent", func(t *testing.T) {
		t.Parallel()
		e := load(t, "rules:\n- name: gone\n  on: [issues]\n  run: {command: [./no/such/agent]}\n", Options{})
		_, err := e.Rule("gone").Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass {
			t.Fatalf("err %v class %v", err, c)
		}
	})

	t.Run("tokens are redacted from output", func(t *testing.T) {
		t.Parallel()
		r := runRule(t, "echo token=ghs_abcdefghijklmnopqrstuvwxyz0123456789ABCD; echo ghp_abcdefghijklmnopqrstuvwxyz0123456789 >&2; exit 1\n", "", Options{})
		res, err := r.Execute(ctx, input(t, "issues.opened", nil), Deps{})
		if res.Run.Stdout != "token=[redacted token]\n" || strings.Contains(err.Error(), "ghp_") {
			t.Fatalf("stdout %q err %v", res.Run.Stdout, err)
		}
	})
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z")
}

func TestRunToken(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl is not installed; the token endpoint test fetches with curl like an agent would")
	}
	ctx := context.Background()
	body := `
{
echo "env=$GITHUB_TOKEN"
echo "gh=$GH_TOKEN"
echo "url=$HOOKD_TOKEN_URL"
echo "fetch1=$(curl -fsS "$HOOKD_TOKEN_URL")"
echo "fetch2=$(curl -fsS "$HOOKD_TOKEN_URL")"
echo "user=$("$GIT_ASKPASS" "Username for 'https://github.com': ")"
echo "pass=$("$GIT_ASKPASS" "Password for 'https://x-access-token@github.com': ")"
echo "wrong=$(curl -s -o /dev/null -w '%{http_code}' "${HOOKD_TOKEN_URL%/*}/guess")"
} > "$OUT"
echo "my token is $GITHUB_TOKEN"
`
	for name, tc := range map[string]struct {
		ttl      time.Duration
		distinct int // distinct tokens seen in env, fetch1, fetch2, pass
	}{
		"short-lived tokens are refreshed on each call": {5 * time.Minute, 4},
		"a fresh token is reused":                       {time.Hour, 1},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "out")
			r := runRule(t, body, fmt.Sprintf("    token: true\n    permissions: {issues: write, contents: read}\n    env: {OUT: %q}\n", out), Options{})
			tokens := &fakeTokens{ttl: tc.ttl}
			in := input(t, "issues.opened", nil)
			res, err := r.Execute(ctx, in, Deps{Tokens: tokens})
			if err != nil {
				t.Fatal(err)
			}
			if res.Run.Stdout != "my token is [redacted token]\n" {
				t.Errorf("stdout %q", res.Run.Stdout)
			}
			b, _ := os.ReadFile(out)
			kv := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				k, v, _ := strings.Cut(l, "=")
				kv[k] = v
			}
			seen := map[string]bool{}
			for _, k := range []string{"env", "fetch1", "fetch2", "pass"} {
				if !strings.HasPrefix(kv[k], "ghs_faketoken") {
					t.Errorf("%s=%q", k, kv[k])
				}
				seen[kv[k]] = true
			}
			if len(seen) != tc.distinct || kv["gh"] != kv["env"] || kv["user"] != "x-access-token" || kv["wrong"] != "404" {
				t.Errorf("got %v", kv)
			}
			if c := tokens.calls[0]; c.inst != in.InstallationID || !slices.Equal(c.repos, []int64{in.RepositoryID}) ||
				c.perms["issues"] != "write" || len(c.perms) != 2 {
				t.Errorf("token request %+v", c)
			}
			// The endpoint is gone after the run.
			if resp, err := http.Get(kv["url"]); err == nil {
				resp.Body.Close()
				t.Errorf("token endpoint still answers after the run: %s", resp.Status)
			}
		})
	}

	t.Run("token needs a repository", func(t *testing.T) {
		t.Parallel()
		r := runRule(t, "true\n", "    token: true\n", Options{})
		in := input(t, "issues.opened", nil)
		in.RepositoryID = 0
		_, err := r.Execute(ctx, in, Deps{Tokens: &fakeTokens{ttl: time.Hour}})
		if c, _ := planner.Classify(err, time.Now()); c != planner.PermanentClass {
			t.Fatalf("err %v", err)
		}
	})
}

// busySemaphore has every slot taken: Acquire records its wait bound and gives up at once.
type busySemaphore struct{ waitUntil time.Time }

func (s *busySemaphore) Acquire(_ context.Context, name string, _ int, waitUntil time.Time) (context.Context, func(), error) {
	s.waitUntil = waitUntil
	return nil, nil, fmt.Errorf("all slots of %s taken: %w", name, ErrSlotsBusy)
}

// losingSemaphore grants every slot and loses it after a while, as KVSemaphore does when its
// lease cannot be renewed.
type losingSemaphore struct{ after time.Duration }

func (s losingSemaphore) Acquire(ctx context.Context, _ string, _ int, _ time.Time) (context.Context, func(), error) {
	held, cancel := context.WithCancelCause(ctx)
	t := time.AfterFunc(s.after, func() { cancel(ErrLeaseLost) })
	return held, func() { t.Stop(); cancel(context.Canceled) }, nil
}
