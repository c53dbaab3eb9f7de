package main

import (
	"os"

	"github.com/spf13/cobra"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "hookd",
		Short: "hookd: a self-hosted GitHub App runtime on NATS JetStream",
		Long: `hookd receives GitHub webhooks, stores every delivery durably in NATS JetStream before
answering, and handles events per repository in order, across any number of replicas, with
retries, dead letters and once-only effects. Rules (comment, label, run an agent, call an HTTP
endpoint) are configuration; Go handlers are one line to register.

Configuration comes from a YAML file (--config or HOOKD_CONFIG) and HOOKD_* environment
variables, which override the file (see hookd.example.yaml and 'hookd config env').`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().String("config", os.Getenv("HOOKD_CONFIG"), "configuration file (YAML); env HOOKD_CONFIG")
	root.AddCommand(
		newServeCmd(),
		newSendCmd(),
		newDemoCmd(),
		newConfigCmd(),
		newRulesCmd(),
		newDLQCmd(),
		newStatusCmd(),
		newVersionCmd(),
	)
	return root
}

func configPath(cmd *cobra.Command) string {
	p, _ := cmd.Flags().GetString("config")
	return p
}
