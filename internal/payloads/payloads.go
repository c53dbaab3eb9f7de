// Package payloads holds real GitHub webhook payloads, copied from the npm package
// @octokit/webhooks-examples (see octokit/NOTICE.md), for tests, benchmarks and examples.
//
// Payloads are returned as fresh byte slices; callers may modify them.
package payloads

import (
	"embed"
	"fmt"
	"path"
	"sort"
	"strings"
)

//go:embed octokit/*.json
var files embed.FS

// Get returns the example named "<event>.<action>" (or "<event>" for events without an action,
// such as "push"), for example Get("issues.opened"). It panics on an unknown name: the set is fixed
// at build time and a typo is a programming error in a test.
func Get(name string) []byte {
	b, err := files.ReadFile(path.Join("octokit", name+".json"))
	if err != nil {
		panic(fmt.Sprintf("payloads: no example %q (have %s)", name, strings.Join(Names(), ", ")))
	}
	return b
}

// Names lists the available examples, sorted.
func Names() []string {
	ents, _ := files.ReadDir("octokit")
	var out []string
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Event returns the webhook event name of an example name: "issues.opened" gives "issues".
func Event(name string) string {
	ev, _, _ := strings.Cut(name, ".")
	ev, _, _ = strings.Cut(ev, "-")
	return ev
}
