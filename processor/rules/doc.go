// Package rules is hookd's user-facing job: rules written as configuration that detect an event
// (an event name and an optional CEL condition), dispatch work (an external command such as an AI
// agent, an HTTP request such as a local Ollama call) and report back (a comment and labels on the
// issue or pull request).
//
// It owns the rule format (RuleConfig, decoded from the `rules:` section of the hookd
// configuration), its compilation (Load: every CEL condition and Go template is compiled and
// checked once, all errors reported together), matching (Engine.Match, pre-indexed by event
// name), the dry description used by `hookd rules test` (Engine.Plan), and execution
// (Rule.Execute: the steps run, http, comment and labels, in that order).
//
// Execution is safe under retries and crashes: every step's result is recorded in an effect
// ledger the caller scopes to one event and rule, so a retry reuses the recorded agent output
// instead of running the agent again, and never posts a comment twice (comments also carry a
// hidden marker, `<!-- hookd:rule=<name> -->`, found again after a crash between posting and
// recording). A rule's `concurrency` is enforced across the whole deployment by a JetStream KV
// semaphore (KVSemaphore) whose leases expire on the server when a holder dies. An execution
// waits for a slot only while its steps would still get their whole timeouts, then hands its
// event back (ErrSlotsBusy, retried after SlotRetry) rather than run late and be cut short.
//
// The package talks to the outside world through narrow interfaces declared here: GitHub (five
// issue methods; GitHubClient adapts a go-github client), Ledger, TokenSource and Semaphore. It
// never imports the processor; the processor adapts to it.
//
// # Commands (the run step)
//
// A command is an argv (never a shell string). It runs in a fresh scratch directory
// (HOOKD_WORKDIR) with the event JSON on stdin and this environment only:
//
//	PATH, HOME, LANG, LC_ALL, TZ, TMPDIR   from hookd's environment, when set
//	HOOKD_EVENT, HOOKD_ACTION, HOOKD_DELIVERY, HOOKD_REPOSITORY, HOOKD_SENDER, HOOKD_RULE
//	HOOKD_ISSUE_NUMBER                      the issue or pull request number, when there is one
//	HOOKD_EVENT_PATH                        a file holding the event JSON
//	HOOKD_WORKDIR                           the scratch directory (removed after the run)
//	the rule's run.env entries
//
// With `token: true` the command also gets a GitHub installation token narrowed to the event's
// repository and to run.permissions (default read-only: contents, issues, pull_requests,
// metadata):
//
//	GITHUB_TOKEN, GH_TOKEN   a token valid when the command starts (installation tokens live 1h)
//	HOOKD_TOKEN_URL          a loopback URL (random secret path, alive only while the command
//	                         runs) that answers each GET with a token valid for at least 10 more
//	                         minutes, minting a fresh one when needed: long jobs must read it
//	                         instead of reusing GITHUB_TOKEN, e.g. TOKEN=$(curl -fsS "$HOOKD_TOKEN_URL")
//	GIT_ASKPASS              a script answering git's credential prompts from HOOKD_TOKEN_URL
//	                         (user x-access-token), so `git clone/push https://github.com/...`
//	                         keeps working past the hour; needs curl or wget
//	GIT_TERMINAL_PROMPT=0
//
// Output is capped (Options.MaxStdout, default 256 KiB; Options.MaxStderr, default 256 KiB). Output
// beyond the cap is discarded and a note saying how much was cut is appended; truncation is not
// a failure. Anything that looks like a GitHub token (ghs_..., ghp_..., github_pat_...) is
// redacted from the output before it is used in templates, comments, logs or errors.
//
// Exit status 0 is success. Exit status 75 (EX_TEMPFAIL) is a transient failure (retried with the
// short backoff); any other non-zero status is an unclassified failure (retried with the long
// backoff, then dead-lettered). A timeout is transient. On timeout or cancellation the command's
// whole process group is killed.
package rules
