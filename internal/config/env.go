package config

import (
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment variable hookd reads.
const EnvPrefix = "HOOKD_"

// envAliases are environment variables whose names do not follow the path rule, mapped to the
// variable the rule gives. They are part of hookd's fixed external interface.
var envAliases = map[string]string{
	"HOOKD_GITHUB_WEBHOOK_SECRET": "HOOKD_GITHUB_WEBHOOK_SECRETS",
}

// EnvVar is one overridable setting: its environment variable and its path in the file.
type EnvVar struct {
	Name string // e.g. HOOKD_GITHUB_APP_ID
	Path string // e.g. github.app_id
	Type string // Go type, for help output
}

// EnvVars lists every setting of v (a pointer to a struct with yaml tags) that an environment
// variable can override: HOOKD_ + the yaml path upper-cased with '.' as '_'. Slices of structs
// (rules) are file-only.
func EnvVars(v any) []EnvVar {
	var out []EnvVar
	walk(reflect.ValueOf(v).Elem(), "", func(path string, f reflect.Value) {
		t := f.Type()
		if t.Kind() == reflect.Pointer {
			t = t.Elem() // an optional setting (*bool): unset means its default
		}
		out = append(out, EnvVar{Name: envName(path), Path: path, Type: t.String()})
	})
	return out
}

func envName(path string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(path, ".", "_"))
}

// applyEnv sets every field of v whose variable is present in env. It returns every parse error
// at once, each naming the variable.
func applyEnv(v any, env func(string) (string, bool)) error {
	lookup := func(name string) (string, bool) {
		if s, ok := env(name); ok {
			return s, true
		}
		for alias, canonical := range envAliases {
			if canonical == name && alias != name {
				if s, ok := env(alias); ok {
					return s, true
				}
			}
		}
		return "", false
	}
	var errs []string
	walk(reflect.ValueOf(v).Elem(), "", func(path string, f reflect.Value) {
		name := envName(path)
		s, ok := lookup(name)
		if !ok {
			return
		}
		if err := setFromString(f, s); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q (setting %s): %v", name, s, path, err))
		}
	})
	if len(errs) > 0 {
		return fmt.Errorf("environment: %s", strings.Join(errs, "; "))
	}
	return nil
}

var durationType = reflect.TypeOf(time.Duration(0))

func walk(v reflect.Value, prefix string, fn func(path string, f reflect.Value)) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := strings.Split(sf.Tag.Get("yaml"), ",")[0]
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = strings.ToLower(sf.Name)
		}
		path := tag
		if prefix != "" {
			path = prefix + "." + tag
		}
		f := v.Field(i)
		switch {
		case f.Kind() == reflect.Struct && sf.Type != durationType:
			walk(f, path, fn)
		case f.Kind() == reflect.Slice && f.Type().Elem().Kind() == reflect.Struct:
			// file-only (e.g. rules)
		case f.Kind() == reflect.Pointer && f.Type().Elem().Kind() == reflect.Struct:
		case f.Kind() == reflect.Map || f.Kind() == reflect.Interface || f.Kind() == reflect.Func:
		default:
			fn(path, f)
		}
	}
}

func setFromString(f reflect.Value, s string) error {
	if f.Kind() == reflect.Pointer { // an optional setting such as sweep.redeliver (*bool)
		v := reflect.New(f.Type().Elem())
		if err := setFromString(v.Elem(), s); err != nil {
			return err
		}
		f.Set(v)
		return nil
	}
	if f.Type() == durationType {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a Go duration such as 30s or 5m: %w", err)
		}
		f.SetInt(int64(d))
		return nil
	}
	switch f.Kind() {
	case reflect.String:
		f.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		f.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		f.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return fmt.Errorf("want a non-negative integer")
		}
		f.SetUint(n)
	case reflect.Float32, reflect.Float64:
		n, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("want a number")
		}
		f.SetFloat(n)
	case reflect.Slice:
		if f.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", f.Type())
		}
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		if len(parts) == 0 { // "," or " , ": not the same as unset, which would take the default
			return fmt.Errorf("want a comma-separated list, got no item")
		}
		f.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported type %s", f.Type())
	}
	return nil
}

// osEnv is os.LookupEnv; a variable set to the empty string counts as unset.
func osEnv(name string) (string, bool) {
	v, ok := os.LookupEnv(name)
	return v, ok && v != ""
}
