package config

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestExampleFile keeps hookd.example.yaml honest: it loads, and it names every key that an
// environment variable can set.
func TestExampleFile(t *testing.T) {
	t.Parallel()
	const path = "../../hookd.example.yaml"
	c, err := Load(path, envMap(nil))
	if err != nil {
		t.Fatalf("hookd.example.yaml does not load: %v", err)
	}
	if len(c.Rules) == 0 {
		t.Error("hookd.example.yaml shows no rules")
	}
	text, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range EnvVars(&Config{}) {
		parts := strings.Split(v.Path, ".")
		key := parts[len(parts)-1]
		if !regexp.MustCompile(`(?m)^\s*#?\s*` + regexp.QuoteMeta(key) + `:`).Match(text) {
			t.Errorf("hookd.example.yaml lacks %s (%s)", v.Path, v.Name)
		}
	}
}
