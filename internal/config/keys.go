package config

import (
	"fmt"
	"reflect"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// unknownKeys lists, in file order, the keys of n (a document decoded as a yaml.Node) that no
// setting of t has, each with its line, its path and the keys its section does have. The YAML
// decoder would say "field adr not found in type ingest.Config"; this says "http.adr".
func unknownKeys(n *yaml.Node, t reflect.Type) []string {
	var out []string
	walkKeys(n, t, "", &out)
	return out
}

var unmarshaler = reflect.TypeFor[yaml.Unmarshaler]()

func walkKeys(n *yaml.Node, t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil || reflect.PointerTo(t).Implements(unmarshaler) || t.Implements(unmarshaler) {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			walkKeys(c, t, path, out)
		}
		return
	case yaml.AliasNode:
		// Not followed: its anchor is walked where it stands, and following aliases can fan out
		// exponentially. The decoder's own check (KnownFields) still sees what an alias brings.
		return
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		if n.Kind == yaml.SequenceNode {
			for i, c := range n.Content {
				walkKeys(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), out)
			}
		}
	case reflect.Map:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				walkKeys(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), out)
			}
		}
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			ft, ok := fields[k.Value]
			if !ok {
				keys := make([]string, 0, len(fields))
				for name := range fields {
					keys = append(keys, name)
				}
				slices.Sort(keys)
				in := "the top level"
				if path != "" {
					in = path
				}
				*out = append(*out, fmt.Sprintf("line %d: %s is not a setting; %s has %s", k.Line, join(path, k.Value), in, strings.Join(keys, ", ")))
				continue
			}
			walkKeys(n.Content[i+1], ft, join(path, k.Value), out)
		}
	}
}

// yamlFields maps the YAML keys of struct type t (its yaml tags, inline structs included) to
// their types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(","+opts+",", ",inline,") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					m[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name) // yaml.v3's default
		}
		m[name] = f.Type
	}
	return m
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
