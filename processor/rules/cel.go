package rules

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
)

// Names of the CEL variables a condition sees.
const (
	varEvent      = "event"
	varAction     = "action"
	varDelivery   = "delivery"
	varPayload    = "payload"
	varRepository = "repository"
	varSender     = "sender"
	varSenderType = "sender_type"
	varReconcile  = "reconcile"
)

// Internal functions the helper macros expand to; the macros pass `payload` implicitly.
const (
	fnHasLabel     = "hookd_has_label"
	fnCommand      = "hookd_command"
	fnIsPR         = "hookd_is_pull_request"
	fnTitleMatches = "hookd_title_matches"
)

// conditionCostLimit bounds one evaluation of a condition (CEL's runtime cost: about one unit
// per operation, more for string functions on long strings). Conditions over webhook payloads
// cost tens to thousands; the limit stops a condition that is quadratic or worse in the payload
// (nested comprehensions over a large list) after some tens of milliseconds instead of holding
// a worker without end: evaluation cannot be interrupted by the handler's timeout or shutdown.
const conditionCostLimit = 1_000_000

// regexCache holds the regular expressions title_matches uses, compiled once per engine. Only
// the patterns known when conditions are compiled (literals) are kept: a pattern taken from an
// event is compiled on each use, so that event data cannot grow the cache.
type regexCache struct{ m sync.Map } // pattern → *regexp.Regexp

// add compiles and keeps a literal pattern.
func (c *regexCache) add(pattern string) error {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return err
	}
	c.m.Store(pattern, re)
	return nil
}

func (c *regexCache) get(pattern string) (*regexp.Regexp, error) {
	if re, ok := c.m.Load(pattern); ok {
		return re.(*regexp.Regexp), nil
	}
	return regexp.Compile(pattern)
}

// newCELEnv builds the environment conditions are compiled in.
func newCELEnv(rc *regexCache) (*cel.Env, error) {
	payloadArg := func(name string) cel.MacroFactory {
		return func(eh cel.MacroExprFactory, _ ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
			if name == fnTitleMatches && len(args) == 1 && args[0].Kind() == ast.LiteralKind {
				if s, ok := args[0].AsLiteral().Value().(string); ok {
					if err := rc.add(s); err != nil {
						return nil, eh.NewError(args[0].ID(), fmt.Sprintf("title_matches: invalid regular expression: %v", err))
					}
				}
			}
			return eh.NewCall(name, append([]ast.Expr{eh.NewIdent(varPayload)}, args...)...), nil
		}
	}
	payloadT := cel.MapType(cel.StringType, cel.DynType)
	return cel.NewEnv(
		cel.Variable(varEvent, cel.StringType),
		cel.Variable(varAction, cel.StringType),
		cel.Variable(varDelivery, cel.StringType),
		cel.Variable(varPayload, payloadT),
		cel.Variable(varRepository, cel.StringType),
		cel.Variable(varSender, cel.StringType),
		cel.Variable(varSenderType, cel.StringType),
		cel.Variable(varReconcile, cel.BoolType),
		cel.Macros(
			cel.GlobalMacro("has_label", 1, payloadArg(fnHasLabel)),
			cel.GlobalMacro("command", 1, payloadArg(fnCommand)),
			cel.GlobalMacro("is_pull_request", 0, payloadArg(fnIsPR)),
			cel.GlobalMacro("title_matches", 1, payloadArg(fnTitleMatches)),
		),
		cel.Function(fnHasLabel, cel.Overload(fnHasLabel+"_map_string",
			[]*cel.Type{payloadT, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(func(p, name ref.Val) ref.Val {
				return types.Bool(hasLabel(nativeMap(p), string(name.(types.String))))
			}))),
		cel.Function(fnCommand, cel.Overload(fnCommand+"_map_string",
			[]*cel.Type{payloadT, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(func(p, name ref.Val) ref.Val {
				return types.Bool(isCommand(nativeMap(p), string(name.(types.String))))
			}))),
		cel.Function(fnIsPR, cel.Overload(fnIsPR+"_map",
			[]*cel.Type{payloadT}, cel.BoolType,
			cel.UnaryBinding(func(p ref.Val) ref.Val {
				return types.Bool(isPullRequest(nativeMap(p)))
			}))),
		cel.Function(fnTitleMatches, cel.Overload(fnTitleMatches+"_map_string",
			[]*cel.Type{payloadT, cel.StringType}, cel.BoolType,
			cel.BinaryBinding(func(p, pattern ref.Val) ref.Val {
				re, err := rc.get(string(pattern.(types.String)))
				if err != nil {
					return types.NewErr("title_matches: invalid regular expression: %v", err)
				}
				return types.Bool(re.MatchString(title(nativeMap(p))))
			}))),
	)
}

var stringAnyMap = reflect.TypeOf(map[string]any{})

// nativeMap returns the Go map behind a CEL map value (the payload is adapted, not copied).
func nativeMap(v ref.Val) map[string]any {
	if m, ok := v.Value().(map[string]any); ok {
		return m
	}
	if mp, ok := v.(traits.Mapper); ok {
		if n, err := mp.ConvertToNative(stringAnyMap); err == nil {
			if m, ok := n.(map[string]any); ok {
				return m
			}
		}
	}
	return nil
}

// subject returns the issue or pull request object of a payload.
func subject(p map[string]any) map[string]any {
	for _, k := range []string{"issue", "pull_request", "discussion"} {
		if m, ok := p[k].(map[string]any); ok {
			return m
		}
	}
	return nil
}

func hasLabel(p map[string]any, name string) bool {
	s := subject(p)
	labels, _ := s["labels"].([]any)
	for _, l := range labels {
		if m, ok := l.(map[string]any); ok {
			if n, _ := m["name"].(string); strings.EqualFold(n, name) {
				return true
			}
		}
	}
	return false
}

// isCommand reports whether the payload's comment starts with /name (then a space or the end).
func isCommand(p map[string]any, name string) bool {
	c, _ := p["comment"].(map[string]any)
	body, _ := c["body"].(string)
	body = strings.TrimLeft(body, " \t\r\n")
	cmd := "/" + strings.TrimPrefix(name, "/")
	rest, ok := strings.CutPrefix(body, cmd)
	return ok && (rest == "" || strings.ContainsAny(rest[:1], " \t\r\n"))
}

func isPullRequest(p map[string]any) bool {
	if _, ok := p["pull_request"].(map[string]any); ok {
		return true
	}
	iss, _ := p["issue"].(map[string]any)
	_, ok := iss["pull_request"].(map[string]any)
	return ok
}

func title(p map[string]any) string {
	t, _ := subject(p)["title"].(string)
	return t
}

// compileCondition compiles a rule's `if`; errors carry line:column.
func compileCondition(env *cel.Env, rule, expr string) (cel.Program, []error) {
	src := common.NewStringSource(expr, "if")
	a, iss := env.CompileSource(src)
	if iss.Err() != nil {
		var errs []error
		for _, e := range iss.Errors() {
			errs = append(errs, fmt.Errorf("rules[%s].if: %d:%d: %s\n%s", rule,
				e.Location.Line(), e.Location.Column()+1, e.Message, snippet(e, src)))
		}
		return nil, errs
	}
	// dyn (e.g. `payload.issue.locked`) is checked when evaluated: a non-bool value is an error.
	if out := a.OutputType(); !out.IsExactType(cel.BoolType) && !out.IsExactType(cel.DynType) {
		return nil, []error{fmt.Errorf("rules[%s].if: 1:1: the condition is of type %s, want bool (compare it, e.g. `... == \"x\"`)",
			rule, a.OutputType())}
	}
	prg, err := env.Program(a, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(conditionCostLimit))
	if err != nil {
		return nil, []error{fmt.Errorf("rules[%s].if: %w", rule, err)}
	}
	return prg, nil
}

// snippet is the caret display of a CEL error without its first line.
func snippet(e *cel.Error, src common.Source) string {
	d := e.ToDisplayString(src)
	if _, rest, ok := strings.Cut(d, "\n"); ok {
		return rest
	}
	return ""
}

// activation resolves the condition variables, decoding the payload on first use.
type activation struct {
	in  *Input
	err error
}

var _ interpreter.Activation = (*activation)(nil)

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case varEvent:
		return a.in.Event, true
	case varAction:
		return a.in.Action, true
	case varDelivery:
		return a.in.Delivery, true
	case varRepository:
		return a.in.Repository, true
	case varSender:
		return a.in.Sender, true
	case varSenderType:
		return a.in.SenderType, true
	case varReconcile:
		return a.in.Reconcile, true
	case varPayload:
		if a.in.Decoded == nil && a.err == nil {
			a.err = a.in.Decode()
		}
		if a.err != nil {
			return nil, false
		}
		return a.in.Decoded, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }
