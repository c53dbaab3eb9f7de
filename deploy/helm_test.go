package deploy

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"text/template/parse"
)

const chartDir = "helm/hookd"

// helmFuncs is the names of the template functions Helm provides (Go's builtins are always
// there): Helm's own and Sprig's. Templates are only parsed, never executed, so the stubs never
// run; a name missing from this list is a typo or a function Helm lacks. Add real Helm
// functions here when a template needs them.
func helmFuncs() template.FuncMap {
	names := strings.Fields(`
		include tpl required toYaml toYamlPretty fromYaml fromYamlArray toJson fromJson fromJsonArray
		toToml fromToml lookup
		default empty coalesce ternary fail quote squote trim trimAll trimPrefix trimSuffix trunc
		upper lower title untitle replace contains hasPrefix hasSuffix indent nindent repeat substr
		nospace cat splitList split join sortAlpha toString toStrings
		list dict get set unset hasKey pluck keys values merge mergeOverwrite deepCopy omit pick dig
		concat first last rest initial append prepend uniq without has compact until untilStep
		add add1 sub div mod mul max min int int64 float64 atoi
		b64enc b64dec sha256sum sha1sum adler32sum randAlphaNum uuidv4 now date
		semver semverCompare regexMatch regexFind regexReplaceAll kindIs kindOf typeIs typeOf deepEqual`)
	fm := template.FuncMap{}
	for _, n := range names {
		fm[n] = func(...any) (any, error) { return nil, fmt.Errorf("stub: templates are parsed, not executed") }
	}
	return fm
}

// parseChart parses every template of the chart into one set, as Helm does.
func parseChart(t *testing.T) *template.Template {
	t.Helper()
	set := template.New("chart").Funcs(helmFuncs())
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 5 {
		t.Fatalf("only %d template files", len(files))
	}
	for _, f := range files {
		if _, err := set.New(filepath.ToSlash(f)).Parse(string(readFile(t, f))); err != nil {
			t.Errorf("%s does not parse: %v", f, err)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return set
}

// tplWalker collects, from parse trees, the .Values paths read and the templates included.
type tplWalker struct {
	name     string
	refs     [][]string // .Values paths, without "Values"
	includes []includeCall
	dotRoot  bool // the tree reads .Values/.Release/.Chart/.Template through `.`
	errs     []string
}

type includeCall struct {
	from, name string
	dotArg     bool // the context passed is `.`
	dotIsRoot  bool // ... and `.` is the root context there
}

var rootFields = []string{"Values", "Release", "Chart", "Template", "Capabilities", "Files"}

func (w *tplWalker) node(n parse.Node, dotIsRoot bool) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			w.node(c, dotIsRoot)
		}
	case *parse.ActionNode:
		w.pipe(n.Pipe, dotIsRoot)
	case *parse.IfNode:
		w.pipe(n.Pipe, dotIsRoot)
		w.node(n.List, dotIsRoot)
		w.node(n.ElseList, dotIsRoot)
	case *parse.RangeNode:
		w.pipe(n.Pipe, dotIsRoot)
		w.node(n.List, false)
		w.node(n.ElseList, dotIsRoot)
	case *parse.WithNode:
		w.pipe(n.Pipe, dotIsRoot)
		w.node(n.List, false)
		w.node(n.ElseList, dotIsRoot)
	case *parse.TemplateNode:
		w.includes = append(w.includes, includeCall{from: w.name, name: n.Name,
			dotArg: n.Pipe != nil && isDot(n.Pipe), dotIsRoot: dotIsRoot})
		if n.Pipe != nil {
			w.pipe(n.Pipe, dotIsRoot)
		}
	}
}

func isDot(p *parse.PipeNode) bool {
	if len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return false
	}
	_, ok := p.Cmds[0].Args[0].(*parse.DotNode)
	return ok
}

func (w *tplWalker) pipe(p *parse.PipeNode, dotIsRoot bool) {
	if p == nil {
		return
	}
	for _, cmd := range p.Cmds {
		for i, a := range cmd.Args {
			switch a := a.(type) {
			case *parse.FieldNode:
				if slices.Contains(rootFields, a.Ident[0]) {
					if !dotIsRoot {
						w.errs = append(w.errs, fmt.Sprintf("%s: .%s inside range/with, where `.` is not the root context; use $.%s", w.name, strings.Join(a.Ident, "."), strings.Join(a.Ident, ".")))
						continue
					}
					w.dotRoot = true
					if a.Ident[0] == "Values" {
						w.refs = append(w.refs, a.Ident[1:])
					}
				}
			case *parse.VariableNode:
				if a.Ident[0] == "$" && len(a.Ident) > 1 && a.Ident[1] == "Values" {
					w.refs = append(w.refs, a.Ident[2:])
				}
			case *parse.PipeNode:
				w.pipe(a, dotIsRoot)
			case *parse.IdentifierNode:
				if (a.Ident == "include" || a.Ident == "tpl") && i == 0 && len(cmd.Args) >= 3 {
					if s, ok := cmd.Args[1].(*parse.StringNode); ok && a.Ident == "include" {
						_, dot := cmd.Args[2].(*parse.DotNode)
						w.includes = append(w.includes, includeCall{from: w.name, name: s.Text, dotArg: dot, dotIsRoot: dotIsRoot})
					}
				}
			}
		}
	}
}

func TestHelmTemplates(t *testing.T) {
	t.Parallel()
	set := parseChart(t)
	values := loadValues(t)

	walkers := map[string]*tplWalker{}
	for _, tpl := range set.Templates() {
		if tpl.Tree == nil || tpl.Name() == "chart" {
			continue
		}
		w := &tplWalker{name: tpl.Name()}
		w.node(tpl.Tree.Root, true)
		walkers[tpl.Name()] = w
	}
	if len(walkers) < 10 {
		t.Fatalf("only %d templates and defines parsed", len(walkers))
	}
	nrefs := 0
	for _, name := range sortedKeys(walkers) {
		w := walkers[name]
		for _, e := range w.errs {
			t.Error(e)
		}
		for _, ref := range w.refs {
			nrefs++
			if err := lookupValue(values, ref); err != nil {
				t.Errorf("%s reads .Values.%s: %v; add it to values.yaml with a comment", name, strings.Join(ref, "."), err)
			}
		}
		for _, inc := range w.includes {
			callee, ok := walkers[inc.name]
			if !ok {
				t.Errorf("%s includes %q, which no template defines", name, inc.name)
				continue
			}
			if inc.dotArg && !inc.dotIsRoot && callee.dotRoot {
				t.Errorf("%s includes %q with `.` inside range/with, but %q reads the root context; pass $", name, inc.name, inc.name)
			}
		}
	}
	if nrefs < 30 {
		t.Errorf("only %d .Values references found: the walk is broken", nrefs)
	}
}

// lookupValue checks that the path exists in values.yaml.
func lookupValue(values map[string]any, path []string) error {
	var cur any = values
	for i, key := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			if cur == nil {
				return nil // declared without a value: anything below is the user's
			}
			return fmt.Errorf("%s is a %T, not a map", strings.Join(path[:i], "."), cur)
		}
		v, ok := m[key]
		if !ok {
			return fmt.Errorf("%s is not in values.yaml", strings.Join(path[:i+1], "."))
		}
		cur = v
	}
	return nil
}

func loadValues(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	decodeYAML(t, filepath.Join(chartDir, "values.yaml"), &v)
	return v
}

func dig(t *testing.T, values map[string]any, path string) any {
	t.Helper()
	var cur any = values
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("values.yaml: %s: %s is not a map", path, k)
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("values.yaml: %s is missing", path)
		}
	}
	return cur
}

func TestHelmChart(t *testing.T) {
	t.Parallel()
	var chart struct {
		APIVersion   string `yaml:"apiVersion"`
		Name         string `yaml:"name"`
		Description  string `yaml:"description"`
		Type         string `yaml:"type"`
		Version      string `yaml:"version"`
		AppVersion   string `yaml:"appVersion"`
		KubeVersion  string `yaml:"kubeVersion"`
		Home         string `yaml:"home"`
		Sources      []string
		Keywords     []string
		Dependencies []struct {
			Name       string `yaml:"name"`
			Version    string `yaml:"version"`
			Repository string `yaml:"repository"`
			Condition  string `yaml:"condition"`
		} `yaml:"dependencies"`
	}
	decodeYAML(t, filepath.Join(chartDir, "Chart.yaml"), &chart)
	values := loadValues(t)

	if chart.APIVersion != "v2" || chart.Name != "hookd" || chart.Type != "application" {
		t.Errorf("Chart.yaml: apiVersion %q name %q type %q; want v2, hookd, application", chart.APIVersion, chart.Name, chart.Type)
	}
	semver := regexp.MustCompile(`^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)
	if !semver.MatchString(chart.Version) || !semver.MatchString(chart.AppVersion) {
		t.Errorf("Chart.yaml: version %q and appVersion %q must be SemVer", chart.Version, chart.AppVersion)
	}
	if len(chart.Dependencies) != 1 {
		t.Fatalf("Chart.yaml: want the nats dependency, got %d", len(chart.Dependencies))
	}
	d := chart.Dependencies[0]
	if d.Name != "nats" || d.Repository != "https://nats-io.github.io/k8s/helm/charts/" || !strings.HasPrefix(d.Version, "~1.") {
		t.Errorf("Chart.yaml: dependency %+v; want nats ~1.x from https://nats-io.github.io/k8s/helm/charts/", d)
	}
	if d.Condition != "nats.enabled" {
		t.Errorf("Chart.yaml: the nats dependency's condition is %q; want nats.enabled", d.Condition)
	}
	if _, ok := dig(t, values, d.Condition).(bool); !ok {
		t.Errorf("values.yaml: %s must be a boolean", d.Condition)
	}

	t.Run("probes", func(t *testing.T) {
		t.Parallel()
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"} {
			if got := dig(t, values, probe+".httpGet.path"); got != path {
				t.Errorf("values.yaml: %s.httpGet.path is %v; want %s", probe, got, path)
			}
			if got := dig(t, values, probe+".httpGet.port"); got != "http" {
				t.Errorf("values.yaml: %s.httpGet.port is %v; want the container port named http", probe, got)
			}
		}
		grace, _ := dig(t, values, "terminationGracePeriodSeconds").(int)
		sleep, _ := dig(t, values, "preStopSleepSeconds").(int)
		if drain := int(drainTime(defaultConfig(t)).Seconds()); grace < drain+sleep+5 {
			t.Errorf("values.yaml: terminationGracePeriodSeconds %d leaves no margin over preStopSleepSeconds %d + hookd's %ds drain (shutdown_timeout)", grace, sleep, drain)
		}
	})

	t.Run("security", func(t *testing.T) {
		t.Parallel()
		if dig(t, values, "podSecurityContext.runAsNonRoot") != true {
			t.Error("values.yaml: podSecurityContext.runAsNonRoot must be true")
		}
		if u, _ := dig(t, values, "podSecurityContext.runAsUser").(int); u == 0 {
			t.Error("values.yaml: podSecurityContext.runAsUser must not be 0")
		}
		if dig(t, values, "securityContext.readOnlyRootFilesystem") != true {
			t.Error("values.yaml: securityContext.readOnlyRootFilesystem must be true (the data directory is an emptyDir)")
		}
	})

	t.Run("nats", func(t *testing.T) {
		t.Parallel()
		sr := dig(t, values, "nats.streamReplicas")
		if cr := dig(t, values, "nats.config.cluster.replicas"); cr != sr || sr != 3 {
			t.Errorf("values.yaml: nats.streamReplicas %v and nats.config.cluster.replicas %v; want 3 and 3", sr, cr)
		}
		for _, k := range []string{"nats.config.cluster.enabled", "nats.config.jetstream.enabled", "nats.config.jetstream.fileStore.enabled", "nats.config.jetstream.fileStore.pvc.enabled"} {
			if dig(t, values, k) != true {
				t.Errorf("values.yaml: %s must be true: hookd needs a replicated, file-backed JetStream", k)
			}
		}
		if s := dig(t, values, "nats.config.jetstream.merge.sync_interval"); s != "always" {
			t.Errorf("values.yaml: nats.config.jetstream.merge.sync_interval is %v; want always, like hookd's embedded server", s)
		}
	})

	t.Run("components", func(t *testing.T) {
		t.Parallel()
		helpers := string(readFile(t, filepath.Join(chartDir, "templates", "_helpers.tpl")))
		comps := regexp.MustCompile(`(?m)^- name: (\w+)\n\s+roles: ([a-z,]+)$`).FindAllStringSubmatch(helpers, -1)
		if len(comps) != 4 {
			t.Fatalf("_helpers.tpl: want the 4 components (combined, ingest, processor, sweep), found %d", len(comps))
		}
		for _, c := range comps {
			for _, r := range strings.Split(c[2], ",") {
				if !slices.Contains(roles(), r) {
					t.Errorf("component %s: %q is not a role", c[1], r)
				}
			}
			if _, ok := dig(t, values, c[1]+".replicas").(int); !ok {
				t.Errorf("values.yaml: %s.replicas must be an integer", c[1])
			}
			dig(t, values, c[1]+".resources")
		}
		if m := dig(t, values, "mode"); m != "split" && m != "combined" {
			t.Errorf("values.yaml: mode %v; want split or combined", m)
		}
	})

	t.Run("deployment", func(t *testing.T) {
		t.Parallel()
		src := string(readFile(t, filepath.Join(chartDir, "templates", "deployment.yaml")))
		env := map[string]string{}
		for _, m := range regexp.MustCompile(`- name: (HOOKD_\w+)\n\s+value: (.*)`).FindAllStringSubmatch(src, -1) {
			env[m[1]] = m[2]
		}
		for _, m := range regexp.MustCompile(`- name: (HOOKD_\w+)\n\s+valueFrom:`).FindAllStringSubmatch(src, -1) {
			env[m[1]] = "(from a Secret)"
		}
		for _, want := range []string{"HOOKD_ROLES", "HOOKD_CONFIG", "HOOKD_DATA_DIR", "HOOKD_NATS_URL", "HOOKD_NATS_REPLICAS",
			"HOOKD_GITHUB_APP_ID", "HOOKD_GITHUB_PRIVATE_KEY_FILE", "HOOKD_GITHUB_WEBHOOK_SECRET", "HOOKD_LOG_LEVEL", "HOOKD_LOG_FORMAT"} {
			if _, ok := env[want]; !ok {
				t.Errorf("deployment.yaml does not set %s", want)
			}
		}
		mounts := regexp.MustCompile(`mountPath: (\S+)`).FindAllStringSubmatch(src, -1)
		mounted := func(p string) bool {
			return slices.ContainsFunc(mounts, func(m []string) bool { return m[1] == p })
		}
		if cfg := env["HOOKD_CONFIG"]; !mounted(cfg) || !strings.Contains(src, "subPath: "+filepath.Base(cfg)) {
			t.Errorf("HOOKD_CONFIG=%s is not the mounted ConfigMap key", cfg)
		}
		cm := string(readFile(t, filepath.Join(chartDir, "templates", "configmap.yaml")))
		if !strings.Contains(cm, "  "+filepath.Base(env["HOOKD_CONFIG"])+": |") {
			t.Errorf("configmap.yaml has no key %s", filepath.Base(env["HOOKD_CONFIG"]))
		}
		key := env["HOOKD_GITHUB_PRIVATE_KEY_FILE"]
		if !mounted(filepath.Dir(key)) || !strings.Contains(src, "path: "+filepath.Base(key)) {
			t.Errorf("HOOKD_GITHUB_PRIVATE_KEY_FILE=%s is not the mounted Secret item", key)
		}
		if !mounted(env["HOOKD_DATA_DIR"]) {
			t.Errorf("HOOKD_DATA_DIR=%s is not mounted; the root filesystem is read-only", env["HOOKD_DATA_DIR"])
		}
		if !regexp.MustCompile(`- name: http\n\s+containerPort: 8080\n`).MatchString(src) {
			t.Error("deployment.yaml: no container port named http on 8080 (the probes and the Service use it)")
		}
		for _, p := range []string{"livenessProbe", "readinessProbe", "startupProbe"} {
			if !strings.Contains(src, p+":\n            {{- toYaml $.Values."+p+" | nindent 12 }}") {
				t.Errorf("deployment.yaml does not render .Values.%s as the container's %s", p, p)
			}
		}
	})

	t.Run("ingress", func(t *testing.T) {
		t.Parallel()
		if p := dig(t, values, "ingress.path"); p != "/webhook" {
			t.Errorf("values.yaml: ingress.path %v; want /webhook", p)
		}
		svc := string(readFile(t, filepath.Join(chartDir, "templates", "service.yaml")))
		if !strings.Contains(svc, `app.kubernetes.io/component: {{ $webhook }}`) {
			t.Error("service.yaml: the webhook Service must select only the ingest (or combined) pods")
		}
		ing := string(readFile(t, filepath.Join(chartDir, "templates", "ingress.yaml")))
		if !strings.Contains(ing, `name: {{ include "hookd.fullname" . }}`+"\n") || !strings.Contains(ing, "path: {{ .Values.ingress.path }}") {
			t.Error("ingress.yaml must route ingress.path to the webhook Service")
		}
	})
}

// TestHelmFilesPresent guards the chart's layout.
func TestHelmFilesPresent(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"Chart.yaml", "values.yaml", ".helmignore", "templates/_helpers.tpl", "templates/NOTES.txt",
		"templates/deployment.yaml", "templates/service.yaml", "templates/configmap.yaml", "templates/ingress.yaml",
		"templates/pdb.yaml", "templates/servicemonitor.yaml", "templates/networkpolicy.yaml", "templates/serviceaccount.yaml"} {
		if _, err := os.Stat(filepath.Join(chartDir, f)); err != nil {
			t.Error(err)
		}
	}
}
