package deploy

import (
	"bufio"
	"bytes"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	Line int    // first line
	Cmd  string // upper case: FROM, RUN, COPY, ...
	Args string
}

// stage is one FROM and the instructions after it.
type stage struct {
	Name  string // the AS name, or ""
	From  string // the image
	Instr []instruction
}

func (s stage) all(cmd string) []instruction {
	var out []instruction
	for _, in := range s.Instr {
		if in.Cmd == cmd {
			out = append(out, in)
		}
	}
	return out
}

func (s stage) last(cmd string) (instruction, bool) {
	all := s.all(cmd)
	if len(all) == 0 {
		return instruction{}, false
	}
	return all[len(all)-1], true
}

// parseDockerfile splits a Dockerfile into global ARGs and stages.
func parseDockerfile(t *testing.T, file string) (args map[string]string, stages []stage) {
	t.Helper()
	args = map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, file)))
	var cur *instruction
	var instrs []instruction
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if cur == nil && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if cur != nil && strings.HasPrefix(trimmed, "#") {
			continue // comment inside a continued instruction
		}
		cont := strings.HasSuffix(trimmed, "\\")
		trimmed = strings.TrimSuffix(trimmed, "\\")
		if cur == nil {
			cmd, rest, _ := strings.Cut(trimmed, " ")
			cur = &instruction{Line: n, Cmd: strings.ToUpper(cmd), Args: strings.TrimSpace(rest)}
		} else {
			cur.Args += " " + strings.TrimSpace(trimmed)
		}
		if !cont {
			instrs = append(instrs, *cur)
			cur = nil
		}
	}
	if cur != nil {
		t.Fatalf("%s: the last instruction ends with a line continuation", file)
	}
	for _, in := range instrs {
		switch {
		case in.Cmd == "FROM":
			f := strings.Fields(in.Args)
			var st stage
			for i := 0; i < len(f); i++ {
				switch {
				case strings.HasPrefix(f[i], "--"):
				case strings.EqualFold(f[i], "AS") && i+1 < len(f):
					st.Name = f[i+1]
					i++
				default:
					st.From = f[i]
				}
			}
			stages = append(stages, st)
		case len(stages) == 0 && in.Cmd == "ARG":
			k, v, _ := strings.Cut(in.Args, "=")
			args[k] = v
		case len(stages) == 0:
			t.Fatalf("%s:%d: %s before the first FROM", file, in.Line, in.Cmd)
		default:
			stages[len(stages)-1].Instr = append(stages[len(stages)-1].Instr, in)
		}
	}
	if len(stages) == 0 {
		t.Fatalf("%s: no FROM", file)
	}
	return args, stages
}

// checkRuntimeStage holds a stage that runs hookd to the image contract: a non-root user, the
// binary it starts copied in, `serve` by default, the /data volume, port 8080, SIGTERM.
func checkRuntimeStage(t *testing.T, file string, st stage) {
	t.Helper()
	where := file + " stage " + st.Name
	if st.Name == "" {
		where = file + " final stage"
	}
	user, ok := st.last("USER")
	if !ok {
		t.Errorf("%s: no USER; the image must not run as root", where)
	} else if u, _, _ := strings.Cut(user.Args, ":"); u == "root" || u == "0" {
		t.Errorf("%s:%d: USER %s runs as root; use 65532 (distroless nonroot)", file, user.Line, user.Args)
	}
	ep, ok := st.last("ENTRYPOINT")
	if !ok {
		t.Fatalf("%s: no ENTRYPOINT", where)
	}
	bin := firstExecArg(t, file, ep)
	copied := false
	for _, c := range st.all("COPY") {
		f := nonFlagFields(c.Args)
		if len(f) >= 2 && f[len(f)-1] == bin {
			copied = true
		}
	}
	if !copied {
		t.Errorf("%s:%d: ENTRYPOINT runs %s, which no COPY in the stage puts there", file, ep.Line, bin)
	}
	if cmd, ok := st.last("CMD"); !ok || firstExecArg(t, file, cmd) != "serve" {
		t.Errorf("%s: CMD must be [\"serve\"] so that `docker run IMAGE` serves", where)
	}
	if v, ok := st.last("VOLUME"); !ok || !strings.Contains(v.Args, `"/data"`) {
		t.Errorf("%s: no VOLUME [\"/data\"] for the embedded JetStream store", where)
	}
	if e, ok := st.last("EXPOSE"); !ok || e.Args != "8080" {
		t.Errorf("%s: EXPOSE 8080 (hookd's default HTTP address) missing", where)
	}
	env := ""
	for _, e := range st.all("ENV") {
		env += " " + e.Args
	}
	if !strings.Contains(env, "HOOKD_DATA_DIR=/data") {
		t.Errorf("%s: ENV HOOKD_DATA_DIR=/data missing; the default ./data would depend on WORKDIR", where)
	}
	if s, ok := st.last("STOPSIGNAL"); ok && s.Args != "SIGTERM" {
		t.Errorf("%s:%d: STOPSIGNAL %s; hookd drains on SIGTERM", file, s.Line, s.Args)
	}
}

func firstExecArg(t *testing.T, file string, in instruction) string {
	t.Helper()
	m := regexp.MustCompile(`^\[\s*"([^"]+)"`).FindStringSubmatch(in.Args)
	if m == nil {
		t.Fatalf("%s:%d: %s %s is not in exec form [\"...\"]; shell form needs a shell and breaks signal delivery", file, in.Line, in.Cmd, in.Args)
	}
	return m[1]
}

func nonFlagFields(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		if !strings.HasPrefix(f, "--") {
			out = append(out, f)
		}
	}
	return out
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	const file = "Dockerfile"
	args, stages := parseDockerfile(t, file)

	t.Run("builder", func(t *testing.T) {
		t.Parallel()
		goVersion := goDirective(t)
		if got := args["GO_VERSION"]; !strings.HasPrefix(goVersion, got+".") && goVersion != got {
			t.Errorf("ARG GO_VERSION=%s does not match go.mod's go %s", got, goVersion)
		}
		var build *instruction
		var buildStage stage
		for _, st := range stages {
			for _, in := range st.all("RUN") {
				if strings.Contains(in.Args, "go build") {
					build, buildStage = &in, st
				}
			}
		}
		if build == nil {
			t.Fatal("no RUN with go build")
		}
		if !strings.HasPrefix(buildStage.From, "golang:") {
			t.Errorf("go build runs in FROM %s; want a golang: image", buildStage.From)
		}
		for _, want := range []string{
			"./cmd/hookd", "CGO_ENABLED=0", "-trimpath", `-s -w`, "-X main.version=${VERSION}",
			"--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/root/.cache/go-build",
		} {
			if !strings.Contains(build.Args, want) {
				t.Errorf("%s:%d: go build lacks %q", file, build.Line, want)
			}
		}
		if !cmdDeclaresVersion(t) {
			t.Error(`-X main.version stamps nothing: cmd/hookd declares no package-level "var version string"`)
		}
		hasVersionArg := false
		for _, in := range buildStage.all("ARG") {
			hasVersionArg = hasVersionArg || strings.HasPrefix(in.Args, "VERSION")
		}
		if !hasVersionArg {
			t.Errorf("the build stage uses ${VERSION} without ARG VERSION")
		}
	})

	t.Run("runtime", func(t *testing.T) {
		t.Parallel()
		final := stages[len(stages)-1]
		if !strings.Contains(final.From, "distroless/static") || !strings.HasSuffix(final.From, ":nonroot") {
			t.Errorf("the final (default) stage is FROM %s; want distroless/static:nonroot", final.From)
		}
		if _, ok := final.last("HEALTHCHECK"); ok {
			t.Error("the distroless stage has a HEALTHCHECK, but it has no shell or client to run one with")
		}
		n := 0
		for _, st := range stages {
			if _, ok := st.last("ENTRYPOINT"); ok {
				checkRuntimeStage(t, file, st)
				n++
			}
		}
		if n < 2 {
			t.Errorf("want the distroless and alpine runtime stages, found %d with an ENTRYPOINT", n)
		}
		for _, st := range stages {
			if strings.HasPrefix(st.From, "alpine") {
				run := ""
				for _, in := range st.all("RUN") {
					run += in.Args
				}
				if !strings.Contains(run, "ca-certificates") {
					t.Errorf("stage %s lacks ca-certificates: hookd calls the GitHub API over TLS", st.Name)
				}
				if _, ok := st.last("HEALTHCHECK"); !ok {
					t.Errorf("stage %s has a shell but no HEALTHCHECK", st.Name)
				}
			}
		}
	})

	t.Run("context", func(t *testing.T) {
		t.Parallel()
		ignore := readIgnore(t, file+".dockerignore")
		// The bind-mounted context must keep every Go file and every embedded file.
		needed := goBuildInputs(t)
		for _, st := range stages {
			for _, in := range st.all("RUN") {
				for _, m := range regexp.MustCompile(`type=bind,source=([^, ]+)`).FindAllStringSubmatch(in.Args, -1) {
					needed = append(needed, m[1])
				}
			}
		}
		for _, p := range needed {
			if ignore.excludes(p) {
				t.Errorf("%s.dockerignore excludes %s, which the build needs", file, p)
			}
			if _, err := os.Stat(filepath.Join(repoRoot, p)); err != nil {
				t.Errorf("the build needs %s: %v", p, err)
			}
		}
		if !ignore.excludes(".git/HEAD") {
			t.Errorf("%s.dockerignore should exclude .git (size, and secrets in its config)", file)
		}
		// Keys where docs/DEPLOY.md puts them: the repository root (docker run) and compose's secrets.
		for _, secret := range []string{"app.pem", "deploy/compose/secrets/github-app.pem", "deploy/compose/.env"} {
			if !ignore.excludes(secret) {
				t.Errorf("%s.dockerignore sends %s to the builder", file, secret)
			}
		}
	})
}

func TestDockerfileAgents(t *testing.T) {
	t.Parallel()
	const file = "Dockerfile.agents"
	_, stages := parseDockerfile(t, file)
	final := stages[len(stages)-1]
	checkRuntimeStage(t, file, final)
	run := ""
	for _, in := range final.all("RUN") {
		run += in.Args
	}
	for _, tool := range []string{"ca-certificates", "curl", "git", "jq"} {
		if !regexp.MustCompile(`\b` + regexp.QuoteMeta(tool) + `\b`).MatchString(run) {
			t.Errorf("%s installs no %s", file, tool)
		}
	}
	if !strings.Contains(final.From, "debian") || !strings.Contains(final.From, "slim") {
		t.Errorf("%s: final stage FROM %s; want a debian slim image (it has sh)", file, final.From)
	}
	ignore := readIgnore(t, file+".dockerignore")
	for _, c := range final.all("COPY") {
		if strings.Contains(c.Args, "--from=") {
			continue
		}
		f := nonFlagFields(c.Args)
		for _, src := range f[:len(f)-1] {
			src = strings.TrimSuffix(src, "/")
			if ignore.excludes(src + "/x") {
				t.Errorf("%s:%d: COPY %s, but %s.dockerignore excludes it", file, c.Line, src, file)
			}
			if _, err := os.Stat(filepath.Join(repoRoot, src)); err != nil {
				t.Errorf("%s:%d: COPY %s: not in the repository (%v); the image cannot build", file, c.Line, src, err)
			}
		}
	}
}

// goDirective returns go.mod's go version, e.g. "1.26.0".
func goDirective(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^go (\S+)$`).FindSubmatch(readFile(t, filepath.Join(repoRoot, "go.mod")))
	if m == nil {
		t.Fatal("go.mod has no go directive")
	}
	return string(m[1])
}

// cmdDeclaresVersion reports whether package main in cmd/hookd declares `var version` (a string
// the linker's -X can set).
func cmdDeclaresVersion(t *testing.T) bool {
	t.Helper()
	dir := filepath.Join(repoRoot, "cmd", "hookd")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, filepath.Join(dir, e.Name()), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				vs := s.(*ast.ValueSpec)
				for i, n := range vs.Names {
					if n.Name != "version" {
						continue
					}
					if id, ok := vs.Type.(*ast.Ident); ok && id.Name == "string" {
						return true
					}
					if vs.Type == nil && i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							return true
						}
					}
				}
			}
		}
	}
	return false
}

// goBuildInputs lists, relative to the repository root with '/' separators, every .go file and
// every file a //go:embed directive names, outside deploy/ and testdata.
func goBuildInputs(t *testing.T) []string {
	t.Helper()
	var out []string
	embed := regexp.MustCompile(`(?m)^//go:embed (.+)$`)
	err := filepath.WalkDir(repoRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", "deploy":
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		out = append(out, rel)
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range embed.FindAllSubmatch(src, -1) {
			for _, pat := range strings.Fields(string(m[1])) {
				matches, err := filepath.Glob(filepath.Join(filepath.Dir(p), filepath.FromSlash(pat)))
				if err != nil {
					return err
				}
				for _, mm := range matches {
					r, _ := filepath.Rel(repoRoot, mm)
					out = append(out, filepath.ToSlash(r))
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("found no Go files to build")
	}
	return out
}

// ignoreFile is a .dockerignore: patterns matched against context paths and their parent
// directories, '!' re-including; the last pattern that matches wins.
type ignoreFile []ignoreRule

type ignoreRule struct {
	re      *regexp.Regexp
	include bool
}

func readIgnore(t *testing.T, file string) ignoreFile {
	t.Helper()
	var out ignoreFile
	for _, line := range strings.Split(string(readFile(t, file)), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		r := ignoreRule{}
		if strings.HasPrefix(line, "!") {
			r.include, line = true, line[1:]
		}
		line = strings.Trim(path.Clean("/"+line), "/")
		r.re = regexp.MustCompile("^" + globRegexp(line) + "$")
		out = append(out, r)
	}
	return out
}

func globRegexp(glob string) string {
	var b strings.Builder
	for i := 0; i < len(glob); i++ {
		switch c := glob[i]; {
		case strings.HasPrefix(glob[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	return b.String()
}

// excludes reports whether the context path p (slash-separated, relative) is left out.
func (f ignoreFile) excludes(p string) bool {
	excluded := false
	for _, r := range f {
		for q := p; q != "." && q != "/" && q != ""; q = path.Dir(q) {
			if r.re.MatchString(q) {
				excluded = !r.include
				break
			}
		}
	}
	return excluded
}

func TestIgnoreFile(t *testing.T) {
	t.Parallel()
	rules := func(lines ...string) ignoreFile {
		var f ignoreFile
		for _, l := range lines {
			r := ignoreRule{}
			if strings.HasPrefix(l, "!") {
				r.include, l = true, l[1:]
			}
			r.re = regexp.MustCompile("^" + globRegexp(l) + "$")
			f = append(f, r)
		}
		return f
	}
	tests := []struct {
		name  string
		rules ignoreFile
		path  string
		want  bool
	}{
		{"dir excludes contents", rules(".git"), ".git/HEAD", true},
		{"root-only name", rules("hookd"), "cmd/hookd/main.go", false},
		{"root file", rules("hookd"), "hookd", true},
		{"double star", rules("**/*.test"), "a/b/c.test", true},
		{"double star at root", rules("**/*.test"), "c.test", true},
		{"reinclude", rules("*", "!examples/agents"), "examples/agents/triage.sh", false},
		{"reinclude leaves others out", rules("*", "!examples/agents"), "go.mod", true},
		{"no rule", rules("data"), "internal/payloads/octokit/push.json", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.rules.excludes(tt.path); got != tt.want {
				t.Errorf("excludes(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}
