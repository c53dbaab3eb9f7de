package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/config"
	"github.com/hookd/hookd/processor"
	"github.com/hookd/hookd/sweep"
)

// opsConnectTimeout bounds how long an operator command waits for NATS. nats.connect_timeout is
// serve's: how long to wait for a NATS that is still starting (the Helm chart sets 2m, which
// `kubectl exec ... hookd status` inherits); an operator whose NATS refuses or does not answer
// is told so within seconds instead.
const opsConnectTimeout = 5 * time.Second

// opsConn connects an operator command to the JetStream of a running deployment: HOOKD_NATS_URL
// (nats.url), or the embedded server of a local `hookd serve` (nats.listen).
func opsConn(cmd *cobra.Command) (*config.Config, *nats.Conn, jetstream.JetStream, error) {
	cfg, err := loadConfig(cmd)
	if err != nil {
		return nil, nil, nil, err
	}
	url := cfg.NATS.URL
	if url == "" {
		url = "nats://" + cfg.NATS.Listen
	}
	ncfg := cfg.NATS
	capped := ""
	if ncfg.ConnectTimeout <= 0 || ncfg.ConnectTimeout > opsConnectTimeout {
		ncfg.ConnectTimeout = opsConnectTimeout
		capped = fmt.Sprintf("; operator commands wait at most %s, whatever nats.connect_timeout says", opsConnectTimeout)
	}
	nc, err := broker.Connect(cmd.Context(), url, ncfg, "hookd-cli", zerolog.Nop())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w (is `hookd serve` running? the CLI reaches its embedded JetStream on nats.listen, or HOOKD_NATS_URL%s)", err, capped)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, nil, err
	}
	return cfg, nc, js, nil
}

func newDLQCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect, replay, delete and purge dead letters (events that failed for good)",
		Long: `Dead letters are events whose handling failed permanently, or kept failing until
retry.max_attempts. Each keeps the original payload and headers, the handlers that failed,
the last error, the attempt count and times. Replay puts an event back into processing with
its delivery id, so its effect ledger still holds what was already done.`,
	}
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List dead letters",
		Example: "  hookd dlq list\n  hookd dlq list --json | jq '.[].error'",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, nc, js, err := opsConn(cmd)
			if err != nil {
				return err
			}
			defer nc.Close()
			dls, err := processor.NewDLQ(js).List(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), deadLettersJSON(dls, false))
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tDEAD-LETTERED\tEVENT\tTENANT\tDELIVERY\tHANDLERS\tATTEMPTS\tERROR")
			for _, d := range dls {
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", d.ID, d.Time.Format(time.RFC3339), eventAction(d.Meta.Event, d.Meta.Action),
					d.Meta.Tenant().String(), d.Meta.Delivery, strings.Join(d.Handlers, ","), d.Attempts, trunc(d.Error, 80))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d dead letter(s)\n", len(dls))
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Show one dead letter: headers, error and payload",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeadLetterID(args[0])
			if err != nil {
				return err
			}
			_, nc, js, err := opsConn(cmd)
			if err != nil {
				return err
			}
			defer nc.Close()
			d, err := processor.NewDLQ(js).Get(cmd.Context(), id)
			if err != nil {
				return err
			}
			return writeJSON(cmd.OutOrStdout(), deadLettersJSON([]processor.DeadLetter{d}, true)[0])
		},
	}
	var all bool
	replay := &cobra.Command{
		Use:     "replay ID... | --all",
		Short:   "Put dead letters back into processing, keeping their delivery ids",
		Example: "  hookd dlq replay 12 13\n  hookd dlq replay --all",
		RunE: func(cmd *cobra.Command, args []string) error {
			if all == (len(args) > 0) {
				return errors.New("give dead-letter IDs or --all, not both and not neither")
			}
			var ids []uint64
			for _, a := range args {
				id, err := parseDeadLetterID(a)
				if err != nil {
					return err
				}
				if !slices.Contains(ids, id) { // replayed once, it is gone: a repeat would fail
					ids = append(ids, id)
				}
			}
			_, nc, js, err := opsConn(cmd)
			if err != nil {
				return err
			}
			defer nc.Close()
			q := processor.NewDLQ(js)
			var n int
			if all {
				n, err = q.ReplayAll(cmd.Context())
			} else {
				n, err = q.Replay(cmd.Context(), ids...)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d dead letter(s) replayed\n", n)
			return err
		},
	}
	replay.Flags().BoolVar(&all, "all", false, "replay every dead letter")
	var yes bool
	purge := &cobra.Command{
		Use:   "purge --yes",
		Short: "Delete every dead letter",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !yes {
				return errors.New("purge deletes every dead letter for good: add --yes")
			}
			_, nc, js, err := opsConn(cmd)
			if err != nil {
				return err
			}
			defer nc.Close()
			if err := processor.NewDLQ(js).Purge(cmd.Context()); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "dead letters purged")
			return nil
		},
	}
	purge.Flags().BoolVar(&yes, "yes", false, "confirm")
	del := &cobra.Command{
		Use:     "delete ID...",
		Short:   "Delete dead letters without replaying them",
		Example: "  hookd dlq delete 17 18",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []uint64
			for _, a := range args {
				id, err := parseDeadLetterID(a)
				if err != nil {
					return err
				}
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
			_, nc, js, err := opsConn(cmd)
			if err != nil {
				return err
			}
			defer nc.Close()
			if err := processor.NewDLQ(js).Delete(cmd.Context(), ids...); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%d dead letter(s) deleted\n", len(ids))
			return nil
		},
	}
	cmd.AddCommand(list, show, replay, del, purge)
	return cmd
}

// parseDeadLetterID reads an ID as `hookd dlq list` shows it: a stream sequence, so 1 or more
// (JetStream reads 0 as no sequence at all and answers "Empty Request").
func parseDeadLetterID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("ID %q: want the number `hookd dlq list` shows (1 or more)", s)
	}
	return id, nil
}

type deadLetterJSON struct {
	ID          uint64            `json:"id"`
	Time        time.Time         `json:"time"`
	Event       string            `json:"event"`
	Action      string            `json:"action,omitempty"`
	Delivery    string            `json:"delivery"`
	Tenant      string            `json:"tenant"`
	Handlers    []string          `json:"handlers"`
	Error       string            `json:"error"`
	Class       string            `json:"class"`
	Attempts    int               `json:"attempts"`
	FirstFailed time.Time         `json:"first_failed"`
	LastFailed  time.Time         `json:"last_failed"`
	StreamSeq   uint64            `json:"stream_seq"`
	Headers     map[string]string `json:"headers,omitempty"`
	Payload     json.RawMessage   `json:"payload,omitempty"`
}

func deadLettersJSON(dls []processor.DeadLetter, full bool) []deadLetterJSON {
	out := make([]deadLetterJSON, 0, len(dls))
	for _, d := range dls {
		j := deadLetterJSON{ID: d.ID, Time: d.Time, Event: d.Meta.Event, Action: d.Meta.Action, Delivery: d.Meta.Delivery,
			Tenant: d.Meta.Tenant().String(), Handlers: d.Handlers, Error: d.Error, Class: d.Class, Attempts: d.Attempts,
			FirstFailed: d.FirstFailed, LastFailed: d.LastFailed, StreamSeq: d.StreamSeq}
		if full {
			j.Headers = map[string]string{}
			for k := range d.Header {
				j.Headers[k] = d.Header.Get(k)
			}
			if json.Valid(d.Body) {
				j.Payload = d.Body
			}
		}
		out = append(out, j)
	}
	return out
}

func newStatusCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the processor's partitions and the sweep's repositories and redeliveries",
		Long: `status reads the state of a running deployment from JetStream: per processor partition the
lag, events in flight, redelivered and dead-lettered, and the replica it is pinned to; per
installation and repository the last sweep, its result, the drift it found, the cursor, the
interval and the rate limit left; and the redelivery worker's last pass.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, nc, js, err := opsConn(cmd)
			if err != nil {
				return err
			}
			defer nc.Close()
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			// Consumer per partition and replicas' partitions follow nats.partitions: with another
			// count than the deployment's (status run without its configuration), all of it is wrong.
			if n, err := streamPartitions(ctx, js); err != nil {
				return notHookd(err)
			} else if n > 0 && n != cfg.NATS.Partitions {
				return fmt.Errorf("nats.partitions: the events stream %s has %d partitions, this configuration %d: give status the deployment's configuration (--config FILE, or HOOKD_NATS_PARTITIONS=%d)", broker.StreamEvents, n, cfg.NATS.Partitions, n)
			}
			st, err := processor.ReadStatus(ctx, js, cfg.Processor, cfg.NATS.Partitions)
			if err != nil {
				return notHookd(err)
			}
			sw, err := sweep.Status(ctx, js)
			if err != nil {
				return notHookd(err)
			}
			replicas, err := processor.Replicas(ctx, js, cfg.NATS.Partitions)
			if err != nil {
				return notHookd(err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), struct {
					Replicas  []processor.Replica `json:"replicas"`
					Processor processor.Status    `json:"processor"`
					Sweep     sweep.StatusReport  `json:"sweep"`
				}{replicas, st, sw})
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, "REPLICAS")
			w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "REPLICA\tHOST\tPID\tSTARTED\tPARTITIONS")
			for _, r := range replicas {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%v\n", r.ID, r.Host, r.PID, when(r.Started), r.Partitions)
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintln(out, "\nPROCESSOR")
			w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "PARTITION\tCONSUMER\tPENDING\tIN FLIGHT\tREDELIVERED\tDEAD LETTERS\tREPLICAS WAITING\tPINNED TO")
			for _, p := range st.Partitions {
				if !p.Exists {
					fmt.Fprintf(w, "%d\t%s\t(not created yet)\t\t\t\t\t\n", p.Partition, p.Consumer)
					continue
				}
				fmt.Fprintf(w, "%d\t%s\t%d\t%d\t%d\t%d\t%d\t%s\n", p.Partition, p.Consumer, p.Pending, p.AckPending, p.Redelivered, p.DeadLetters, p.Waiting, orDash(p.PinnedClient))
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "dead letters: %d (hookd dlq list)\n\nSWEEP\n", st.DeadLetters)
			w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "INSTALLATION\tREPOSITORY\tLAST SWEEP\tRESULT\tDRIFT\tCURSOR\tINTERVAL\tRATE LEFT")
			for _, in := range sw.Installations {
				for _, r := range in.Repositories {
					fmt.Fprintf(w, "%d (%s)\t%s\t%s\t%s\t%d\t%s\t%s\t%d/%d\n", in.InstallationID, orDash(in.Account), r.Tenant.FullName(),
						when(r.LastSweep), orDash(r.LastResult+errSuffix(r.LastError)), r.LastDrift, when(r.Cursor), r.Interval, in.RateRemaining, in.RateLimit)
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
			fmt.Fprintf(out, "redelivery: last pass %s (%s), %d requested; %d redelivered within the window",
				when(sw.Redeliver.LastPass), orDash(sw.Redeliver.LastResult+errSuffix(sw.Redeliver.LastError)), sw.Redeliver.Requested, len(sw.Pending))
			if sw.RedeliverTodo > 0 {
				fmt.Fprintf(out, "; %d log entries left for the next pass", sw.RedeliverTodo)
			}
			fmt.Fprintln(out)
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

// notHookd says what to check when the NATS an operator command reached has no JetStream, or
// JetStream without hookd's streams: most often nats.listen or HOOKD_NATS_URL names another
// server than the deployment's.
func notHookd(err error) error {
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w (this NATS has no JetStream: is nats.listen or HOOKD_NATS_URL the deployment's?)", err)
	case errors.Is(err, jetstream.ErrStreamNotFound):
		return fmt.Errorf("%w (has hookd started against this NATS? check nats.listen or HOOKD_NATS_URL)", err)
	}
	return err
}

// streamPartitions reads the partition count of the events stream from its subject transform;
// 0 if it has none.
func streamPartitions(ctx context.Context, js jetstream.JetStream) (int, error) {
	s, err := js.Stream(ctx, broker.StreamEvents)
	if err != nil {
		return 0, fmt.Errorf("events stream %s: %w", broker.StreamEvents, err)
	}
	n, _ := broker.TransformPartitions(s.CachedInfo().Config.SubjectTransform)
	return n, nil
}

func when(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.UTC().Format(time.RFC3339)
}

func errSuffix(e string) string {
	if e == "" {
		return ""
	}
	return ": " + trunc(e, 60)
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func eventAction(ev, action string) string {
	if action == "" {
		return ev
	}
	return ev + "." + action
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 1
	for cut > 0 && !utf8.RuneStart(s[cut]) { // not inside a character
		cut--
	}
	return s[:cut] + "…"
}
