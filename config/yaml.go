package config

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// YAML renders every key in file order, the way Load reads it back. Print
// Masked() rather than the Config itself.
func (c *Config) YAML() ([]byte, error) {
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, f := range leaves(c) {
		value, err := valueNode(f.value)
		if err != nil {
			return nil, fmt.Errorf("config: %s: %w", f.key, err)
		}
		insert(root, strings.Split(f.key, "."), value)
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return out.Bytes(), nil
}

// insert puts value at path, creating the sections on the way in order.
func insert(mapping *yaml.Node, path []string, value *yaml.Node) {
	for len(path) > 1 {
		mapping = section(mapping, path[0])
		path = path[1:]
	}
	mapping.Content = append(mapping.Content, scalar("!!str", path[0]), value)
}

func section(mapping *yaml.Node, name string) *yaml.Node {
	for i := 0; i+1 < len(mapping.Content); i += 2 {
		if mapping.Content[i].Value == name {
			return mapping.Content[i+1]
		}
	}
	child := &yaml.Node{Kind: yaml.MappingNode}
	mapping.Content = append(mapping.Content, scalar("!!str", name), child)
	return child
}

func valueNode(v reflect.Value) (*yaml.Node, error) {
	switch {
	case v.Type() == durationType:
		return scalar("!!str", formatDuration(time.Duration(v.Int()))), nil
	case v.Kind() == reflect.String:
		return scalar("!!str", v.String()), nil
	case v.Kind() == reflect.Bool:
		return scalar("!!bool", strconv.FormatBool(v.Bool())), nil
	case v.Kind() == reflect.Int:
		return scalar("!!int", strconv.FormatInt(v.Int(), 10)), nil
	case v.Kind() == reflect.Float64:
		// A whole number prints as one ("20", not "!!float 20"); Load
		// accepts either for a float key.
		if f := v.Float(); f == math.Trunc(f) && math.Abs(f) < 1<<53 {
			return scalar("!!int", strconv.FormatInt(int64(f), 10)), nil
		}
		return scalar("!!float", formatFloat(v.Float())), nil
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
		list := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := range v.Len() {
			list.Content = append(list.Content, scalar("!!str", v.Index(i).String()))
		}
		return list, nil
	}
	return nil, fmt.Errorf("no YAML form for %s", v.Type())
}

func scalar(tag, value string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}
