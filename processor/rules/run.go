package rules

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/hookd/hookd/planner"
)

// ExitTempFail is the exit status (sysexits EX_TEMPFAIL) a command uses to ask for a retry with
// the short backoff, e.g. when the model server it calls is down.
const ExitTempFail = 75

// killGrace is how long a command's process group has between SIGTERM and SIGKILL.
const killGrace = 5 * time.Second

var (
	errRunTimeout = errors.New("run timed out")
	// tokenRE matches GitHub tokens: installation (ghs_), OAuth (gho_), user-to-server (ghu_),
	// refresh (ghr_), personal (ghp_) and fine-grained personal (github_pat_).
	tokenRE = regexp.MustCompile(`gh[opsur]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}`)
)

// passedEnv are the variables a command inherits from hookd's environment.
var passedEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

// runCommand runs the rule's command for in. See the package documentation for its contract.
func (r *Rule) runCommand(ctx context.Context, in *Input, deps Deps, log zerolog.Logger) (RunOutput, error) {
	rc := r.cfg.Run
	ctx, cancel := context.WithTimeoutCause(ctx, rc.Timeout, errRunTimeout)
	defer cancel()

	dir, err := os.MkdirTemp("", "hookd-run-")
	if err != nil {
		return RunOutput{}, fmt.Errorf("create a scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)
	eventPath := filepath.Join(dir, "event.json")
	if err := os.WriteFile(eventPath, in.Payload, 0o600); err != nil {
		return RunOutput{}, fmt.Errorf("write the event file: %w", err)
	}

	env := make([]string, 0, 24)
	for _, k := range passedEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	num := ""
	if in.IssueNumber != 0 {
		num = strconv.Itoa(in.IssueNumber)
	}
	env = append(env,
		"HOOKD_EVENT="+in.Event, "HOOKD_ACTION="+in.Action, "HOOKD_DELIVERY="+in.Delivery,
		"HOOKD_REPOSITORY="+in.Repository, "HOOKD_SENDER="+in.Sender, "HOOKD_ISSUE_NUMBER="+num,
		"HOOKD_RULE="+r.cfg.Name, "HOOKD_EVENT_PATH="+eventPath, "HOOKD_WORKDIR="+dir,
	)
	var ts *tokenServer
	if rc.Token {
		ts, err = r.startTokens(ctx, in, deps, log)
		if err != nil {
			return RunOutput{}, err
		}
		defer ts.Close()
		tok, err := ts.Get(ctx)
		if err != nil {
			return RunOutput{}, fmt.Errorf("mint a token for the command: %w", err)
		}
		askpass := filepath.Join(dir, "git-askpass.sh")
		if err := os.WriteFile(askpass, []byte(askpassScript), 0o700); err != nil {
			return RunOutput{}, fmt.Errorf("write the git askpass script: %w", err)
		}
		env = append(env, "GITHUB_TOKEN="+tok, "GH_TOKEN="+tok, "HOOKD_TOKEN_URL="+ts.URL,
			"GIT_ASKPASS="+askpass, "GIT_TERMINAL_PROMPT=0")
	}
	keys := make([]string, 0, len(rc.Env))
	for k := range rc.Env {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		env = append(env, k+"="+rc.Env[k])
	}

	stdout := &capped{max: r.opts.MaxStdout}
	stderr := &capped{max: r.opts.MaxStderr}
	cmd := exec.CommandContext(ctx, r.argv[0], r.argv[1:]...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = bytes.NewReader(in.Payload)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.WaitDelay = killGrace
	setProcessGroup(cmd)
	start := time.Now()
	runErr := cmd.Run()
	killGroup(cmd) // whatever the command left running in the background

	out := RunOutput{ExitCode: -1}
	if cmd.ProcessState != nil {
		out.ExitCode = cmd.ProcessState.ExitCode()
	}
	var secrets []string
	if ts != nil {
		secrets = ts.Minted()
	}
	out.Truncated = stdout.dropped > 0 || stderr.dropped > 0
	out.Stdout, out.Stderr = redact(stdout.String(), secrets), redact(stderr.String(), secrets)
	log.Debug().Int("exit_code", out.ExitCode).Dur("took", time.Since(start)).Bool("truncated", out.Truncated).Msg("command finished")

	switch {
	case runErr == nil, errors.Is(runErr, exec.ErrWaitDelay) && out.ExitCode == 0:
		return out, nil
	case errors.Is(context.Cause(ctx), errRunTimeout):
		return out, planner.Transient(fmt.Errorf("%s timed out after %s; its process group was killed (raise run.timeout if it needs longer)", r.argv[0], rc.Timeout))
	case ctx.Err() != nil:
		return out, fmt.Errorf("%s stopped: %w", r.argv[0], ctx.Err())
	case errors.Is(runErr, exec.ErrNotFound), errors.Is(runErr, fs.ErrNotExist), errors.Is(runErr, fs.ErrPermission):
		return out, planner.Permanent(fmt.Errorf("cannot start %s: %w (check run.command: the program must exist and be executable)", r.argv[0], runErr))
	}
	err = fmt.Errorf("%s exited with status %d%s", r.argv[0], out.ExitCode, stderrTail(out.Stderr))
	if out.ExitCode == ExitTempFail {
		return out, planner.Transient(err)
	}
	return out, err
}

// stderrTail is the end of a command's standard error for an error message.
func stderrTail(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	const n = 1024
	if len(s) > n {
		s = s[len(s)-n:]
		for !utf8.ValidString(s) && s != "" {
			s = s[1:]
		}
		s = "…" + s
	}
	return ": " + s
}

// redact removes GitHub tokens and the given secrets from s.
func redact(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 8 {
			s = strings.ReplaceAll(s, sec, "[redacted token]")
		}
	}
	return tokenRE.ReplaceAllString(s, "[redacted token]")
}

// capped keeps the first max bytes written to it and counts the rest.
type capped struct {
	buf     bytes.Buffer
	max     int
	dropped int64
}

func (c *capped) Write(p []byte) (int, error) {
	room := c.max - c.buf.Len()
	if room >= len(p) {
		c.buf.Write(p)
		return len(p), nil
	}
	if room > 0 {
		c.buf.Write(p[:room])
	}
	c.dropped += int64(len(p) - max(room, 0))
	return len(p), nil
}

// String is the kept output, cut at a character boundary, with a note when output was dropped.
func (c *capped) String() string {
	s := c.buf.String()
	if c.dropped == 0 {
		return s
	}
	for !utf8.ValidString(s) && s != "" { // drop a partial character at the cut
		s = s[:len(s)-1]
	}
	return fmt.Sprintf("%s\n\n… [hookd: output truncated: %d more bytes over the %d-byte cap]", s, c.dropped, c.max)
}

// askpassScript answers git's credential prompts: the user is x-access-token, the password a
// fresh token from HOOKD_TOKEN_URL.
const askpassScript = `#!/bin/sh
# hookd: answers git's credential prompts for this run (GIT_ASKPASS).
case "$1" in
Username*) echo x-access-token ;;
*)
	if command -v curl >/dev/null 2>&1; then
		exec curl -fsS "$HOOKD_TOKEN_URL"
	elif command -v wget >/dev/null 2>&1; then
		exec wget -qO- "$HOOKD_TOKEN_URL"
	else
		echo "hookd git-askpass: need curl or wget to fetch a token from HOOKD_TOKEN_URL" >&2
		exit 1
	fi
	;;
esac
`
