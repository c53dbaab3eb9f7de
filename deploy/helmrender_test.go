package deploy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/hookd/hookd/internal/config"
)

// This file renders the chart without helm: Go's text/template with Go versions of the Helm
// and Sprig functions the templates call (renderFuncs), values loaded the way Helm loads them
// (numbers from files are float64), and the objects checked against each other and against
// hookd: selectors that select, ports and volumes that exist, probes on hookd's endpoints, a
// configuration file that hookd's loader accepts with the environment each pod gets.

// kubeDefault is the Kubernetes version renders assume unless a case sets another.
const kubeDefault = "v1.31.0"

// renderFuncs are Go versions of the Helm and Sprig functions the chart calls, with Sprig's
// semantics (argument order, empty values, conversions). A template calling a function missing
// here fails to render: add it, with Sprig's behaviour.
func renderFuncs(set **template.Template) template.FuncMap {
	return template.FuncMap{
		"include": func(name string, data any) (string, error) {
			var b strings.Builder
			err := (*set).ExecuteTemplate(&b, name, data)
			return b.String(), err
		},
		"toYaml": func(v any) (string, error) {
			var b bytes.Buffer
			enc := yaml.NewEncoder(&b)
			enc.SetIndent(2)
			if err := enc.Encode(v); err != nil {
				return "", err
			}
			return strings.TrimSuffix(b.String(), "\n"), nil
		},
		"fromYamlArray": func(s string) ([]any, error) {
			var out []any
			err := yaml.Unmarshal([]byte(s), &out)
			return out, err
		},
		"nindent": func(n int, s string) string {
			pad := strings.Repeat(" ", n)
			return "\n" + pad + strings.ReplaceAll(s, "\n", "\n"+pad)
		},
		"quote": func(args ...any) string {
			var out []string
			for _, a := range args {
				if a != nil {
					out = append(out, strconv.Quote(strval(a)))
				}
			}
			return strings.Join(out, " ")
		},
		"default": func(d any, given ...any) any {
			if len(given) == 0 || isEmpty(given[0]) {
				return d
			}
			return given[0]
		},
		"required": func(msg string, v any) (any, error) {
			if s, ok := v.(string); v == nil || ok && s == "" {
				return nil, errors.New(msg)
			}
			return v, nil
		},
		"fail": func(msg string) (string, error) { return "", errors.New(msg) },
		"trunc": func(n int, s string) string {
			if n >= 0 && len(s) > n {
				return s[:n]
			}
			return s
		},
		"trimSuffix": func(suffix, s string) string { return strings.TrimSuffix(s, suffix) },
		"contains":   func(substr, s string) bool { return strings.Contains(s, substr) },
		"replace":    func(old, repl, s string) string { return strings.ReplaceAll(s, old, repl) },
		"empty":      isEmpty,
		"sha256sum": func(s string) string {
			sum := sha256.Sum256([]byte(s))
			return hex.EncodeToString(sum[:])
		},
		"toString": strval,
		"int64":    toInt64,
		"int":      func(v any) int { return int(toInt64(v)) },
		"omit": func(m map[string]any, keys ...string) map[string]any {
			out := map[string]any{}
			for k, v := range m {
				if !slices.Contains(keys, k) {
					out[k] = v
				}
			}
			return out
		},
		"concat": func(lists ...any) []any {
			var out []any
			for _, l := range lists {
				v := reflect.ValueOf(l)
				if v.Kind() != reflect.Slice {
					continue
				}
				for i := range v.Len() {
					out = append(out, v.Index(i).Interface())
				}
			}
			return out
		},
		"semverCompare": semverCompare,
	}
}

func strval(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	case error:
		return v.Error()
	}
	return fmt.Sprintf("%v", v)
}

// isEmpty is Sprig's empty: nil, false, 0, and empty strings, lists and maps.
func isEmpty(v any) bool {
	r := reflect.ValueOf(v)
	if !r.IsValid() {
		return true
	}
	switch r.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return r.Len() == 0
	case reflect.Bool:
		return !r.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return r.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return r.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return r.Float() == 0
	case reflect.Pointer, reflect.Interface:
		return r.IsNil()
	}
	return false
}

// toInt64 is Sprig's int64 (spf13/cast): numbers convert, strings parse, anything else is 0.
func toInt64(v any) int64 {
	switch v := v.(type) {
	case int:
		return int64(v)
	case int64:
		return v
	case float64:
		return int64(v)
	case bool:
		if v {
			return 1
		}
	case string:
		n, _ := strconv.ParseInt(strings.TrimSpace(v), 0, 64)
		return n
	}
	return 0
}

// semverCompare supports the one constraint form the chart uses, ">=MAJOR.MINOR.PATCH-0",
// against versions such as v1.30.4 or v1.30.4-eks-a737599 (pre-releases count, as with -0).
func semverCompare(constraint, version string) (bool, error) {
	want, ok := strings.CutPrefix(constraint, ">=")
	if !ok {
		return false, fmt.Errorf("semverCompare: constraint %q is not >=X.Y.Z-0; extend the test's semverCompare", constraint)
	}
	parse := func(s string) ([3]int, error) {
		var out [3]int
		s = strings.TrimPrefix(s, "v")
		s, _, _ = strings.Cut(s, "-")
		s, _, _ = strings.Cut(s, "+")
		for i, p := range strings.SplitN(s, ".", 3) {
			n, err := strconv.Atoi(p)
			if err != nil {
				return out, fmt.Errorf("semverCompare: %q is not a version", s)
			}
			out[i] = n
		}
		return out, nil
	}
	w, err := parse(want)
	if err != nil {
		return false, err
	}
	v, err := parse(version)
	if err != nil {
		return false, err
	}
	for i := range 3 {
		if v[i] != w[i] {
			return v[i] > w[i], nil
		}
	}
	return true, nil
}

// helmValues loads values.yaml as Helm does: numbers become float64 (Helm decodes values files
// through JSON), then merges overrides into it (maps deeply, anything else replaced).
func helmValues(t *testing.T, overrides ...map[string]any) map[string]any {
	t.Helper()
	var v map[string]any
	decodeYAML(t, filepath.Join(chartDir, "values.yaml"), &v)
	v = jsonNumbers(v).(map[string]any)
	for _, o := range overrides {
		mergeValues(v, o)
	}
	return v
}

func jsonNumbers(v any) any {
	switch v := v.(type) {
	case int:
		return float64(v)
	case map[string]any:
		for k, e := range v {
			v[k] = jsonNumbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = jsonNumbers(e)
		}
	}
	return v
}

func mergeValues(dst, src map[string]any) {
	for k, s := range src {
		if sm, ok := s.(map[string]any); ok {
			if dm, ok := dst[k].(map[string]any); ok {
				mergeValues(dm, sm)
				continue
			}
		}
		dst[k] = s
	}
}

// rendered is the output of one render: every object of every template, in file order.
type rendered struct {
	objs  []kobj
	notes string
}

// renderChart renders every template of the chart as release "hookd" in namespace "hookd".
func renderChart(t *testing.T, values map[string]any, kube string) (rendered, error) {
	t.Helper()
	var chart struct {
		Name       string `yaml:"name"`
		Version    string `yaml:"version"`
		AppVersion string `yaml:"appVersion"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join(chartDir, "Chart.yaml")), &chart); err != nil {
		t.Fatal(err)
	}
	var set *template.Template
	set = template.New("chart").Funcs(renderFuncs(&set)).Option("missingkey=zero")
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		t.Fatal(err)
	}
	base := chart.Name + "/templates"
	for _, f := range files {
		if _, err := set.New(base + "/" + filepath.Base(f)).Parse(string(readFile(t, f))); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
	}
	var out rendered
	for _, f := range files {
		name := filepath.Base(f)
		if strings.HasPrefix(name, "_") {
			continue
		}
		top := map[string]any{
			"Values":       values,
			"Release":      map[string]any{"Name": "hookd", "Namespace": "hookd", "Service": "Helm", "IsInstall": true},
			"Chart":        map[string]any{"Name": chart.Name, "Version": chart.Version, "AppVersion": chart.AppVersion},
			"Capabilities": map[string]any{"KubeVersion": map[string]any{"Version": kube}},
			"Template":     map[string]any{"Name": base + "/" + name, "BasePath": base},
		}
		var b strings.Builder
		if err := set.ExecuteTemplate(&b, base+"/"+name, top); err != nil {
			return out, err
		}
		text := strings.ReplaceAll(b.String(), "<no value>", "")
		if name == "NOTES.txt" {
			out.notes = text
			continue
		}
		dec := yaml.NewDecoder(strings.NewReader(text))
		for {
			var o map[string]any
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return out, fmt.Errorf("%s renders invalid YAML: %w\n%s", name, err, text)
			}
			if o != nil {
				out.objs = append(out.objs, kobj(o))
			}
		}
	}
	return out, nil
}

// kobj is a rendered Kubernetes object (or part of one) as decoded YAML.
type kobj map[string]any

func (o kobj) get(path string) any {
	var cur any = map[string]any(o)
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

func (o kobj) m(path string) kobj {
	m, _ := o.get(path).(map[string]any)
	return kobj(m)
}

func (o kobj) s(path string) string {
	v := o.get(path)
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

func (o kobj) list(path string) []kobj {
	l, _ := o.get(path).([]any)
	var out []kobj
	for _, e := range l {
		m, _ := e.(map[string]any)
		out = append(out, kobj(m))
	}
	return out
}

func (o kobj) id() string { return o.s("kind") + "/" + o.s("metadata.name") }

func (r rendered) kind(kind string) []kobj {
	var out []kobj
	for _, o := range r.objs {
		if o.s("kind") == kind {
			out = append(out, o)
		}
	}
	return out
}

func (r rendered) find(kind, name string) (kobj, bool) {
	for _, o := range r.kind(kind) {
		if o.s("metadata.name") == name {
			return o, true
		}
	}
	return nil, false
}

// selects reports whether a label selector's matchLabels select labels.
func selects(sel kobj, labels kobj) bool {
	ml := sel.m("matchLabels")
	if len(ml) == 0 {
		return false
	}
	for k, v := range ml {
		if fmt.Sprint(labels[k]) != fmt.Sprint(v) {
			return false
		}
	}
	return true
}

// docYAMLBlock returns the first ```yaml block of docs/DEPLOY.md that contains marker, with its
// list indentation removed, decoded as Helm values.
func docYAMLBlock(t *testing.T, marker string) map[string]any {
	t.Helper()
	doc := string(readFile(t, filepath.Join(repoRoot, "docs", "DEPLOY.md")))
	for _, m := range regexp.MustCompile("(?ms)^([ \t]*)```yaml\n(.*?)^[ \t]*```").FindAllStringSubmatch(doc, -1) {
		if !strings.Contains(m[2], marker) {
			continue
		}
		var lines []string
		for _, l := range strings.Split(m[2], "\n") {
			lines = append(lines, strings.TrimPrefix(l, m[1]))
		}
		var v map[string]any
		if err := yaml.Unmarshal([]byte(strings.Join(lines, "\n")), &v); err != nil {
			t.Fatalf("docs/DEPLOY.md: the yaml block with %q does not parse: %v", marker, err)
		}
		return jsonNumbers(v).(map[string]any) // a values file, as Helm reads it
	}
	t.Fatalf("docs/DEPLOY.md has no yaml block with %q", marker)
	return nil
}

// TestHelmRender renders the chart for its default values and the variants docs/DEPLOY.md
// documents, and checks the objects against each other and against hookd.
func TestHelmRender(t *testing.T) {
	t.Parallel()
	required := map[string]any{"github": map[string]any{"appId": "123456", "existingSecret": "hookd-github"}}
	docValues := docYAMLBlock(t, "existingSecret")
	docNATS := docYAMLBlock(t, "streamReplicas")
	tests := []struct {
		name      string
		overrides []map[string]any
		kube      string
		natsURL   string // want HOOKD_NATS_URL
		preStop   bool   // want the preStop sleep on the webhook pods
		webhook   []string
	}{
		{name: "defaults", overrides: []map[string]any{required},
			natsURL: "nats://hookd-nats.hookd.svc:4222", preStop: true, webhook: []string{"ingest"}},
		{name: "DEPLOY.md values with ingress and TLS", overrides: []map[string]any{docValues},
			natsURL: "nats://hookd-nats.hookd.svc:4222", preStop: true, webhook: []string{"ingest"}},
		{name: "DEPLOY.md external NATS, scaled out", overrides: []map[string]any{docValues, docNATS,
			{"ingest": map[string]any{"replicas": int64(3)}, "processor": map[string]any{"replicas": int64(4)}}},
			natsURL: docNATS["nats"].(map[string]any)["url"].(string), preStop: true, webhook: []string{"ingest"}},
		{name: "combined with ServiceMonitor and NetworkPolicies", overrides: []map[string]any{required, {
			"mode":           "combined",
			"combined":       map[string]any{"replicas": int64(3)},
			"ingress":        map[string]any{"enabled": true},
			"serviceMonitor": map[string]any{"enabled": true, "labels": map[string]any{"release": "prometheus"}},
			"networkPolicy": map[string]any{"enabled": true,
				"webhookFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "ingress-nginx"}}}},
				"metricsFrom": []any{map[string]any{"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": "monitoring"}}}}},
		}}, natsURL: "nats://hookd-nats.hookd.svc:4222", preStop: true, webhook: []string{"combined"}},
		{name: "split with NetworkPolicies open, one replica each", overrides: []map[string]any{required, {
			"ingest": map[string]any{"replicas": int64(1)}, "processor": map[string]any{"replicas": int64(1)},
			"networkPolicy": map[string]any{"enabled": true}, "serviceMonitor": map[string]any{"enabled": true},
		}}, natsURL: "nats://hookd-nats.hookd.svc:4222", preStop: true, webhook: []string{"ingest"}},
		{name: "Kubernetes 1.29 has no preStop sleep", overrides: []map[string]any{required}, kube: "v1.29.9",
			natsURL: "nats://hookd-nats.hookd.svc:4222", preStop: false, webhook: []string{"ingest"}},
		{name: "preStopSleepSeconds 0", overrides: []map[string]any{required, {"preStopSleepSeconds": int64(0)}},
			natsURL: "nats://hookd-nats.hookd.svc:4222", preStop: false, webhook: []string{"ingest"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			kube := tt.kube
			if kube == "" {
				kube = kubeDefault
			}
			values := helmValues(t, tt.overrides...)
			r, err := renderChart(t, values, kube)
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			checkRendered(t, r, values, tt.natsURL, tt.preStop, tt.webhook)
		})
	}

	errorCases := []struct {
		name      string
		overrides []map[string]any
		want      string // the setting the error must name
	}{
		{"no app id", []map[string]any{{"github": map[string]any{"existingSecret": "s"}}}, "github.appId"},
		{"no secret", []map[string]any{{"github": map[string]any{"appId": "1"}}}, "github.existingSecret"},
		{"url while bundled", []map[string]any{required, {"nats": map[string]any{"url": "nats://x:4222"}}}, "nats.url"},
		{"no url without bundled", []map[string]any{required, {"nats": map[string]any{"enabled": false}}}, "nats.url"},
		{"unknown mode", []map[string]any{required, {"mode": "all"}}, "mode"},
		{"ingress without host", []map[string]any{required, {"ingress": map[string]any{"enabled": true, "host": ""}}}, "ingress.host"},
	}
	for _, tt := range errorCases {
		t.Run("fails: "+tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := renderChart(t, helmValues(t, tt.overrides...), kubeDefault)
			if err == nil || !strings.Contains(err.Error(), tt.want+":") {
				t.Errorf("render error %v; want one naming %s", err, tt.want)
			}
		})
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// checkRendered holds one render to what a working deployment needs.
func checkRendered(t *testing.T, r rendered, values map[string]any, natsURL string, preStop bool, webhook []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, o := range r.objs {
		if o.s("apiVersion") == "" || o.s("kind") == "" || !dnsLabel.MatchString(o.s("metadata.name")) || len(o.s("metadata.name")) > 63 {
			t.Errorf("%s: want apiVersion, kind and a DNS-label name", o.id())
		}
		if seen[o.id()] {
			t.Errorf("%s is rendered twice", o.id())
		}
		seen[o.id()] = true
	}
	if !strings.Contains(r.notes, natsURL) {
		t.Errorf("NOTES.txt does not show the NATS URL %s", natsURL)
	}

	deps := r.kind("Deployment")
	if len(deps) == 0 {
		t.Fatal("no Deployment")
	}
	webhookPods := map[string]bool{}
	var webhookPaths []string
	for _, d := range deps {
		cfg := checkDeployment(t, r, d, natsURL, preStop)
		component := fmt.Sprint(d.m("spec.template.metadata.labels")["app.kubernetes.io/component"])
		if slices.Contains(cfg.Roles, config.RoleIngest) {
			webhookPods[d.s("metadata.name")] = true
			webhookPaths = append(webhookPaths, cfg.HTTP.PathPrefix+cfg.HTTP.Path)
			if !slices.Contains(webhook, component) {
				t.Errorf("%s takes the ingest role; want only %v to", d.id(), webhook)
			}
		}
		if pdbs := selecting(r, "PodDisruptionBudget", "spec.selector", d); len(pdbs) != 1 && values["podDisruptionBudget"].(map[string]any)["enabled"] == true {
			t.Errorf("%s: %d PodDisruptionBudgets select it; want 1", d.id(), len(pdbs))
		} else if len(pdbs) == 1 {
			// With one replica a minAvailable of 1 (or maxUnavailable 0) would block every drain.
			if mu := toInt64(pdbs[0].get("spec.maxUnavailable")); mu < 1 && pdbs[0].get("spec.minAvailable") == nil {
				t.Errorf("%s: maxUnavailable %v; a node drain could never evict its pods", pdbs[0].id(), pdbs[0].get("spec.maxUnavailable"))
			}
			if pdbs[0].get("spec.minAvailable") != nil && toInt64(pdbs[0].get("spec.minAvailable")) >= toInt64(d.get("spec.replicas")) {
				t.Errorf("%s: minAvailable %v with %v replicas blocks every drain", pdbs[0].id(), pdbs[0].get("spec.minAvailable"), d.get("spec.replicas"))
			}
		}
		if values["networkPolicy"].(map[string]any)["enabled"] == true {
			nps := selecting(r, "NetworkPolicy", "spec.podSelector", d)
			if len(nps) == 0 {
				t.Errorf("%s: no NetworkPolicy selects it", d.id())
			}
			for _, np := range nps {
				if slices.Contains(strSlice(np.get("spec.policyTypes")), "Egress") {
					t.Errorf("%s restricts egress: hookd must reach NATS, GitHub and DNS", np.id())
				}
				for _, rule := range np.list("spec.ingress") {
					for _, p := range rule.list("ports") {
						if !containerPort(d, p.s("port")) {
							t.Errorf("%s admits port %s, which %s does not have", np.id(), p.s("port"), d.id())
						}
					}
				}
			}
		}
	}

	for _, svc := range r.kind("Service") {
		var backs []kobj
		for _, d := range deps {
			if selects(kobj{"matchLabels": svc.get("spec.selector")}, d.m("spec.template.metadata.labels")) {
				backs = append(backs, d)
			}
		}
		if len(backs) == 0 {
			t.Errorf("%s selects no hookd pods", svc.id())
		}
		for _, p := range svc.list("spec.ports") {
			for _, d := range backs {
				if !containerPort(d, p.s("targetPort")) {
					t.Errorf("%s: targetPort %s is not a port of %s", svc.id(), p.s("targetPort"), d.id())
				}
			}
		}
	}
	webhookSvc, ok := r.find("Service", "hookd")
	if !ok {
		t.Fatal("no webhook Service hookd")
	}
	for _, d := range deps {
		if got := selects(kobj{"matchLabels": webhookSvc.get("spec.selector")}, d.m("spec.template.metadata.labels")); got != webhookPods[d.s("metadata.name")] {
			t.Errorf("the webhook Service selects %s: %v; want exactly the pods with the ingest role", d.id(), got)
		}
	}

	for _, ing := range r.kind("Ingress") {
		for _, rule := range ing.list("spec.rules") {
			for _, p := range rule.list("http.paths") {
				svc, ok := r.find("Service", p.s("backend.service.name"))
				if !ok {
					t.Errorf("%s routes to Service %s, which is not rendered", ing.id(), p.s("backend.service.name"))
					continue
				}
				if svc.s("metadata.name") != webhookSvc.s("metadata.name") {
					t.Errorf("%s routes to %s; want the webhook Service", ing.id(), svc.id())
				}
				port := p.s("backend.service.port.name")
				if !slices.ContainsFunc(svc.list("spec.ports"), func(sp kobj) bool { return sp.s("name") == port }) {
					t.Errorf("%s: backend port %q is not a port of %s", ing.id(), port, svc.id())
				}
				for _, wp := range webhookPaths {
					if p.s("path") != wp {
						t.Errorf("%s routes %s; the webhook pods serve the webhook at %s (http.path_prefix + http.path)", ing.id(), p.s("path"), wp)
					}
				}
				if pt := p.s("pathType"); pt != "Exact" && pt != "Prefix" {
					t.Errorf("%s: pathType %q", ing.id(), pt)
				}
			}
		}
	}

	for _, sm := range r.kind("ServiceMonitor") {
		var svcs []kobj
		for _, svc := range r.kind("Service") {
			if selects(sm.m("spec.selector"), svc.m("metadata.labels")) {
				svcs = append(svcs, svc)
			}
		}
		if len(svcs) != 1 {
			t.Errorf("%s selects %d Services; want the metrics Service", sm.id(), len(svcs))
			continue
		}
		for _, d := range deps {
			if !selects(kobj{"matchLabels": svcs[0].get("spec.selector")}, d.m("spec.template.metadata.labels")) {
				t.Errorf("%s's Service %s does not reach %s", sm.id(), svcs[0].id(), d.id())
			}
		}
		for _, ep := range sm.list("spec.endpoints") {
			if ep.s("path") != "/metrics" || !slices.ContainsFunc(svcs[0].list("spec.ports"), func(sp kobj) bool { return sp.s("name") == ep.s("port") }) {
				t.Errorf("%s: endpoint %v; want /metrics on a port of %s", sm.id(), ep, svcs[0].id())
			}
		}
	}

	for _, cm := range r.kind("ConfigMap") {
		for k, v := range cm.m("data") {
			if strings.Contains(fmt.Sprint(v), "PRIVATE KEY") {
				t.Errorf("%s key %s holds a private key; keys belong in a Secret", cm.id(), k)
			}
		}
	}
}

func strSlice(v any) []string {
	l, _ := v.([]any)
	var out []string
	for _, e := range l {
		out = append(out, fmt.Sprint(e))
	}
	return out
}

// selecting lists the objects of kind whose selector at path selects d's pods.
func selecting(r rendered, kind, path string, d kobj) []kobj {
	var out []kobj
	for _, o := range r.kind(kind) {
		if selects(o.m(path), d.m("spec.template.metadata.labels")) {
			out = append(out, o)
		}
	}
	return out
}

// containerPort reports whether port (a name or a number) is a port of d's hookd container.
func containerPort(d kobj, port string) bool {
	for _, c := range d.list("spec.template.spec.containers") {
		for _, p := range c.list("ports") {
			if p.s("name") == port || p.s("containerPort") == port {
				return true
			}
		}
	}
	return false
}

// checkDeployment checks one hookd Deployment and returns the configuration its pods load.
func checkDeployment(t *testing.T, r rendered, d kobj, natsURL string, preStop bool) *config.Config {
	t.Helper()
	pod := d.m("spec.template")
	if !selects(d.m("spec.selector"), pod.m("metadata.labels")) {
		t.Errorf("%s: spec.selector does not select its own pods", d.id())
	}
	if toInt64(d.get("spec.replicas")) < 1 {
		t.Errorf("%s: replicas %v", d.id(), d.get("spec.replicas"))
	}
	spec := pod.m("spec")
	if spec.get("automountServiceAccountToken") != false {
		t.Errorf("%s: mounts a service-account token; hookd needs no Kubernetes API", d.id())
	}
	if spec.get("enableServiceLinks") != false {
		t.Errorf("%s: service links on: a Service named hookd puts HOOKD_SERVICE_HOST and the like in the environment, which hookd warns about as unknown settings", d.id())
	}
	psc := spec.m("securityContext")
	if psc.get("runAsNonRoot") != true || toInt64(psc.get("runAsUser")) == 0 {
		t.Errorf("%s: pod securityContext %v; want runAsNonRoot and a non-zero runAsUser", d.id(), psc)
	}
	cs := spec.list("containers")
	if len(cs) != 1 {
		t.Fatalf("%s: %d containers; want hookd alone", d.id(), len(cs))
	}
	c := cs[0]
	sc := c.m("securityContext")
	if sc.get("readOnlyRootFilesystem") != true || sc.get("allowPrivilegeEscalation") != false {
		t.Errorf("%s: container securityContext %v; want a read-only root filesystem and no privilege escalation", d.id(), sc)
	}
	if c.s("image") == "" || !strings.Contains(c.s("image"), ":") {
		t.Errorf("%s: image %q has no tag", d.id(), c.s("image"))
	}
	if got := strSlice(c.get("args")); !slices.Equal(got, []string{"serve"}) {
		t.Errorf("%s: args %v; want [serve] (the image's entrypoint is hookd)", d.id(), got)
	}
	if !containerPort(d, "http") || !containerPort(d, "8080") {
		t.Errorf("%s: no container port http on 8080", d.id())
	}

	volumes := map[string]kobj{}
	for _, v := range spec.list("volumes") {
		volumes[v.s("name")] = v
	}
	mounts := map[string]kobj{} // mountPath → mount
	for _, m := range c.list("volumeMounts") {
		if _, ok := volumes[m.s("name")]; !ok {
			t.Errorf("%s: volumeMount %s has no volume", d.id(), m.s("name"))
		}
		mounts[m.s("mountPath")] = m
	}

	env := map[string]string{}
	known := hookdEnv(t)
	for _, e := range c.list("env") {
		name := e.s("name")
		if _, dup := env[name]; dup {
			t.Errorf("%s: env %s set twice", d.id(), name)
		}
		if _, ok := known[name]; strings.HasPrefix(name, config.EnvPrefix) && !ok {
			t.Errorf("%s: env %s is not a variable hookd reads", d.id(), name)
		}
		switch {
		case e.get("valueFrom.secretKeyRef") != nil:
			env[name] = "from-secret"
		case name == "HOOKD_GITHUB_WEBHOOK_SECRET" || name == "HOOKD_GITHUB_PRIVATE_KEY":
			t.Errorf("%s: %s is a literal value; it must come from the Secret", d.id(), name)
		default:
			env[name] = e.s("value")
		}
	}
	if env["HOOKD_NATS_URL"] != natsURL {
		t.Errorf("%s: HOOKD_NATS_URL=%q; want %q", d.id(), env["HOOKD_NATS_URL"], natsURL)
	}

	// The config file: the mounted ConfigMap key.
	cfgPath := env["HOOKD_CONFIG"]
	m, ok := mounts[cfgPath]
	if !ok {
		t.Fatalf("%s: HOOKD_CONFIG=%s is not mounted", d.id(), cfgPath)
	}
	cmName := volumes[m.s("name")].s("configMap.name")
	cm, ok := r.find("ConfigMap", cmName)
	if !ok {
		t.Fatalf("%s: HOOKD_CONFIG is mounted from ConfigMap %q, which is not rendered", d.id(), cmName)
	}
	file, ok := cm.m("data")[m.s("subPath")].(string)
	if !ok {
		t.Fatalf("%s: ConfigMap %s has no key %q", d.id(), cmName, m.s("subPath"))
	}
	// The private key: the mounted Secret item.
	keyPath := env["HOOKD_GITHUB_PRIVATE_KEY_FILE"]
	if km, ok := mounts[filepath.Dir(keyPath)]; !ok {
		t.Errorf("%s: HOOKD_GITHUB_PRIVATE_KEY_FILE=%s is not in a mounted directory", d.id(), keyPath)
	} else if v := volumes[km.s("name")]; v.get("secret") == nil || !slices.ContainsFunc(v.list("secret.items"), func(it kobj) bool { return it.s("path") == filepath.Base(keyPath) }) {
		t.Errorf("%s: %s is not an item of a Secret volume", d.id(), keyPath)
	}
	// Writable directories on the read-only root filesystem.
	for _, dir := range []string{env["HOOKD_DATA_DIR"], "/tmp"} {
		if m, ok := mounts[dir]; !ok || m.get("readOnly") == true || volumes[m.s("name")].get("emptyDir") == nil {
			t.Errorf("%s: %s is not a writable emptyDir; the root filesystem is read-only", d.id(), dir)
		}
	}

	dir := t.TempDir()
	path := filepath.Join(dir, "hookd.yaml")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	env["HOOKD_CONFIG"] = path
	env["HOOKD_GITHUB_PRIVATE_KEY_FILE"] = filepath.Join(dir, "key.pem")
	cfg, err := config.Load(path, lookup(env))
	if err != nil {
		t.Fatalf("%s: hookd does not load its configuration: %v", d.id(), err)
	}
	if missing := cfg.GitHub.Missing(); len(missing) > 0 {
		roleNeeds := slices.ContainsFunc(missing, func(m string) bool {
			return !strings.HasPrefix(m, "github.webhook_secrets") || cfg.HasRole(config.RoleIngest)
		})
		if roleNeeds {
			t.Errorf("%s (roles %v) lacks GitHub App credentials: %v", d.id(), cfg.Roles, missing)
		}
	}
	if env["HOOKD_GITHUB_WEBHOOK_SECRET"] != "" && !cfg.HasRole(config.RoleIngest) {
		t.Errorf("%s (roles %v) gets the webhook secret, which only the ingest role uses", d.id(), cfg.Roles)
	}

	// Probes on hookd's endpoints and its HTTP port.
	_, port, _ := strings.Cut(cfg.HTTP.Addr, ":")
	for probe, want := range map[string]string{"livenessProbe": "/healthz", "startupProbe": "/healthz", "readinessProbe": "/readyz"} {
		p := c.m(probe)
		if p.s("httpGet.path") != want {
			t.Errorf("%s: %s on %q; want %s", d.id(), probe, p.s("httpGet.path"), want)
		}
		if pp := p.s("httpGet.port"); !containerPort(d, pp) {
			t.Errorf("%s: %s on port %s, which is not a container port", d.id(), probe, pp)
		}
	}
	if !containerPort(d, port) {
		t.Errorf("%s: hookd listens on %s (http.addr), which is not a container port", d.id(), cfg.HTTP.Addr)
	}

	// Graceful shutdown: the preStop sleep and hookd's drain fit in the grace period.
	sleep := time.Duration(toInt64(c.get("lifecycle.preStop.sleep.seconds"))) * time.Second
	if has := sleep > 0; has != (preStop && cfg.HasRole(config.RoleIngest)) {
		t.Errorf("%s: preStop sleep %s; want one only on webhook pods where Kubernetes has the sleep action (%v)", d.id(), sleep, preStop)
	}
	if c.get("lifecycle.preStop") != nil && c.get("lifecycle.preStop.sleep") == nil {
		t.Errorf("%s: preStop without a handler the image can run (it has no shell)", d.id())
	}
	grace := time.Duration(toInt64(spec.get("terminationGracePeriodSeconds"))) * time.Second
	if drain := drainTime(cfg); grace < sleep+drain+5*time.Second {
		t.Errorf("%s: terminationGracePeriodSeconds %s leaves no margin over the preStop sleep %s + hookd's drain %s", d.id(), grace, sleep, drain)
	}
	return cfg
}

// drainTime is the longest a hookd process takes to stop after SIGTERM: its parts drain
// concurrently, each within its own shutdown timeout (the scheduler waits a tenth more for the
// passes it cancelled at its deadline).
func drainTime(cfg *config.Config) time.Duration {
	return max(cfg.ShutdownTimeout, cfg.HTTP.ShutdownTimeout, cfg.Processor.ShutdownTimeout, cfg.Scheduler.ShutdownTimeout*11/10)
}
