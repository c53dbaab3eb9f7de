package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newSendCmd() *cobra.Command {
	var o sendOptions
	cmd := &cobra.Command{
		Use:   "send --event NAME --file PAYLOAD.json",
		Short: "Sign a payload and post it to a webhook endpoint as GitHub would",
		Long: `send signs a payload file with a webhook secret (X-Hub-Signature-256, HMAC-SHA256 over
the exact bytes sent) and posts it with GitHub's delivery headers, then prints the response.
It is the tool to test an endpoint: hookd's own or any other.

The secret comes from --secret, else the first of HOOKD_GITHUB_WEBHOOK_SECRETS (or its alias
HOOKD_GITHUB_WEBHOOK_SECRET); without one the delivery is sent unsigned, with a warning.`,
		Example: `  # send a real issues.opened payload to a local hookd
  hookd send --event issues --file internal/payloads/octokit/issues.opened.json --secret s3cret

  # redeliver: the same delivery id is stored once (the second answer is 200 duplicate)
  hookd send --event issues --delivery 1d2c-... --file issue.json
  hookd send --event issues --delivery 1d2c-... --file issue.json

  # override the action and attach an installation id
  hookd send --event issues --action labeled --installation 42 --file issue.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.secret == "" {
				for _, name := range []string{"HOOKD_GITHUB_WEBHOOK_SECRETS", "HOOKD_GITHUB_WEBHOOK_SECRET"} {
					if first, _, _ := strings.Cut(os.Getenv(name), ","); strings.TrimSpace(first) != "" {
						o.secret = strings.TrimSpace(first)
						break
					}
				}
			}
			if o.secret == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "hookd send: no secret (--secret, HOOKD_GITHUB_WEBHOOK_SECRET(S)): sending unsigned; a verifying endpoint answers 401")
			}
			status, body, err := o.send(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d %s\n%s\n", status, http.StatusText(status), strings.TrimSpace(string(body)))
			if status >= 300 {
				return exitCode(2)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.url, "url", "http://127.0.0.1:8080/webhook", "webhook endpoint")
	f.StringVar(&o.event, "event", "", "X-GitHub-Event (required), e.g. issues")
	f.StringVar(&o.action, "action", "", "set the payload's \"action\" field")
	f.StringVar(&o.delivery, "delivery", "", "X-GitHub-Delivery (default: a new random GUID)")
	f.StringVar(&o.file, "file", "", "payload file (JSON); - for standard input")
	f.StringVar(&o.secret, "secret", "", "webhook secret (default: first of HOOKD_GITHUB_WEBHOOK_SECRETS)")
	f.Int64Var(&o.installation, "installation", 0, "set the payload's installation.id")
	f.BoolVar(&o.form, "form", false, "send as application/x-www-form-urlencoded (payload=...) like a form-type hook")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "request timeout (GitHub gives up after 10s)")
	_ = cmd.MarkFlagRequired("event")
	_ = cmd.MarkFlagRequired("file")
	return cmd
}

type sendOptions struct {
	url, event, action, delivery, file, secret string
	installation                               int64
	form                                       bool
	timeout                                    time.Duration
}

func (o *sendOptions) send(ctx context.Context) (int, []byte, error) {
	var payload []byte
	var err error
	if o.file == "-" {
		payload, err = io.ReadAll(os.Stdin)
	} else {
		payload, err = os.ReadFile(o.file)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("read payload: %w", err)
	}
	if o.action != "" || o.installation != 0 {
		if payload, err = patchPayload(payload, o.action, o.installation); err != nil {
			return 0, nil, err
		}
	}
	if o.delivery == "" {
		o.delivery = newGUID()
	}
	body, ctype := payload, "application/json"
	if o.form {
		body, ctype = []byte("payload="+url.QueryEscape(string(payload))), "application/x-www-form-urlencoded"
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("--url: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	req.Header.Set("User-Agent", "GitHub-Hookshot/hookd-send")
	req.Header.Set("X-GitHub-Event", o.event)
	req.Header.Set("X-GitHub-Delivery", o.delivery)
	if o.secret != "" {
		req.Header.Set("X-Hub-Signature-256", signSHA256(o.secret, body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("post to %s: %w", o.url, err)
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, rb, nil
}

// signSHA256 is GitHub's X-Hub-Signature-256 value for body.
func signSHA256(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func patchPayload(payload []byte, action string, installation int64) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("payload is not a JSON object: %w", err)
	}
	if action != "" {
		m["action"], _ = json.Marshal(action)
	}
	if installation != 0 {
		m["installation"], _ = json.Marshal(map[string]any{"id": installation})
	}
	return json.Marshal(m)
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
