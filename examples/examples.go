// Package examples ships hookd's example agents and rules, embedded so that `hookd demo` runs
// them from any working directory. The files are meant to be read and copied: rules.yaml holds
// real rules (triage with a local model, /explain, greeting, PR labelling), demo-rules.yaml the
// rules of the demo, agents/ the commands rules run.
package examples

import (
	"embed"
	"io/fs"
	"os"
	"path/filepath"
)

//go:embed agents/*.sh rules.yaml demo-rules.yaml
var files embed.FS

// DemoRules is the YAML of the demo's rules (a document with a `rules:` key).
func DemoRules() []byte {
	b, _ := files.ReadFile("demo-rules.yaml")
	return b
}

// WriteAgents copies the example agents into dir/agents, executable, and returns dir: a base
// directory for rules whose commands are "agents/<name>.sh".
func WriteAgents(dir string) (string, error) {
	if err := os.MkdirAll(filepath.Join(dir, "agents"), 0o755); err != nil {
		return "", err
	}
	err := fs.WalkDir(files, "agents", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, path), b, 0o755)
	})
	return dir, err
}
