package main

import (
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/hookd/hookd/internal/broker"
	"github.com/hookd/hookd/internal/config"
	"github.com/hookd/hookd/internal/ghapp"
)

func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check the configuration or list its environment variables",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check",
		Short: "Load, default and validate the configuration; exit non-zero with every problem",
		Example: `  hookd config check --config hookd.yaml
  HOOKD_NATS_REPLICAS=3 hookd config check   # replicas > 1 need HOOKD_NATS_URL: reported`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(cmd)
			if err != nil {
				return err
			}
			if err := checkConfig(cfg); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "configuration ok: roles %v, JetStream %s\n", cfg.Roles, natsWhere(cfg))
			for _, w := range configWarnings(cfg) {
				fmt.Fprintln(cmd.OutOrStdout(), "warning:", w)
			}
			return nil
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "env",
		Short: "List every environment variable hookd reads and the key it overrides",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VARIABLE\tKEY\tTYPE")
			fmt.Fprintln(w, "HOOKD_CONFIG\t(the file itself)\tpath")
			for _, v := range config.EnvVars(&config.Config{}) {
				fmt.Fprintf(w, "%s\t%s\t%s\n", v.Name, v.Path, v.Type)
			}
			fmt.Fprintln(w, "HOOKD_GITHUB_WEBHOOK_SECRET\tgithub.webhook_secrets (comma-separated)\t[]string")
			return w.Flush()
		},
	})
	return cmd
}

func loadConfig(cmd *cobra.Command) (*config.Config, error) {
	return config.Load(configPath(cmd), nil)
}

func natsWhere(cfg *config.Config) string {
	if cfg.NATS.URL == "" {
		return "embedded on " + cfg.NATS.Listen + " (store " + cfg.NATS.DataDir + ")"
	}
	return "at " + broker.RedactURL(cfg.NATS.URL)
}

// checkConfig goes beyond Validate: what can be checked without the network (the private key
// parses).
func checkConfig(cfg *config.Config) error {
	// As serve: the key is used whenever the app id and a key are set, webhook secret or not.
	if cfg.GitHub.CanCallAPI() {
		if _, err := ghapp.New(cfg.GitHub, ghapp.Options{}); err != nil {
			return err
		}
	}
	return nil
}

// configWarnings are settings that work but deserve a second look.
func configWarnings(cfg *config.Config) []string {
	var w []string
	if m := missingCredentials(cfg); len(m) > 0 {
		w = append(w, "GitHub App credentials missing: "+strings.Join(m, ", ")+
			"; set them in the config file's github section or in the environment (values from the GitHub App's settings page)")
	}
	if msg := keyFileWarning(cfg.GitHub.PrivateKeyFile); msg != "" {
		w = append(w, msg)
	}
	if u := unknownEnv(os.Environ()); len(u) > 0 {
		w = append(w, "hookd reads none of "+strings.Join(u, ", ")+": misspelt? ('hookd config env' lists the variables it reads)")
	}
	if cfg.NATS.URL == "" && cfg.NATS.Sync == broker.SyncInterval {
		w = append(w, "nats.sync is interval: a power loss can lose deliveries acknowledged in the last "+cfg.NATS.SyncEvery.String()+" (the sweep's redelivery brings them back)")
	}
	return w
}

// keyFileWarning says so when the GitHub App's private key file can be read by every user of the
// machine (a group-readable file, as Kubernetes mounts secrets for a pod's fsGroup, is fine).
func keyFileWarning(path string) string {
	if path == "" {
		return ""
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o004 == 0 {
		return ""
	}
	return fmt.Sprintf("github.private_key_file %s can be read by every user of this machine (mode %04o); anyone who reads it can act as the app: chmod o-r it (or 600)", path, fi.Mode().Perm())
}

// unknownEnv lists the HOOKD_* variables of environ (os.Environ's form) that hookd does not
// read: a misspelt one (HOOKD_NATS_REPLICA=3) would otherwise be ignored without a word.
// Kubernetes' service links are not hookd's to read: a Service named hookd (or hookd-*) gives
// every pod of its namespace HOOKD_SERVICE_HOST, HOOKD_PORT_8080_TCP and the like.
func unknownEnv(environ []string) []string {
	known := map[string]bool{"HOOKD_CONFIG": true, "HOOKD_GITHUB_WEBHOOK_SECRET": true}
	for _, v := range config.EnvVars(&config.Config{}) {
		known[v.Name] = true
	}
	var unknown []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, config.EnvPrefix) && !known[name] && !serviceLink.MatchString(name) {
			unknown = append(unknown, name)
		}
	}
	slices.Sort(unknown)
	return unknown
}

// serviceLink matches the variables Kubernetes sets for a Service (enableServiceLinks):
// <NAME>_SERVICE_HOST, <NAME>_SERVICE_PORT[_<port name>], <NAME>_PORT and
// <NAME>_PORT_<port>_<protocol>[_ADDR|_PORT|_PROTO].
var serviceLink = regexp.MustCompile(`_SERVICE_(HOST|PORT(_[A-Z0-9_]+)?)$|_PORT(_[0-9]+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?)?$`)
