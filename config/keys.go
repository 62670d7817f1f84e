package config

import (
	"reflect"
	"strings"
)

// EnvPrefix starts every environment override: CONNECTOR_CSTA_LISTEN.
const EnvPrefix = "CONNECTOR"

// EnvVar is the environment variable that overrides key
// (csta.listen → CONNECTOR_CSTA_LISTEN).
func EnvVar(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// Keys lists every key path of the configuration, in the order of the file.
func Keys() []string {
	return leafKeys(leaves(Default()))
}

// leaf is one settable value of a config struct and its key path.
type leaf struct {
	key   string
	value reflect.Value // addressable
}

// leaves walks the mapstructure tags of the struct target points to; nested
// structs become sections ("csta.limits"), everything else a leaf.
func leaves(target any) []leaf {
	var out []leaf
	walk(reflect.ValueOf(target).Elem(), "", &out)
	return out
}

func walk(v reflect.Value, prefix string, out *[]leaf) {
	for i := range v.NumField() {
		tag := v.Type().Field(i).Tag.Get("mapstructure")
		if tag == "" || tag == "-" {
			continue
		}
		key := tag
		if prefix != "" {
			key = prefix + "." + tag
		}
		field := v.Field(i)
		if field.Kind() == reflect.Struct && field.Type() != durationType {
			walk(field, key, out)
			continue
		}
		*out = append(*out, leaf{key: key, value: field})
	}
}

func leafKeys(ls []leaf) []string {
	keys := make([]string, len(ls))
	for i, l := range ls {
		keys[i] = l.key
	}
	return keys
}

// sectionsOf lists every proper prefix of the keys ("csta", "csta.limits").
func sectionsOf(keys []string) map[string]bool {
	sections := make(map[string]bool)
	for _, key := range keys {
		for i := range len(key) {
			if key[i] == '.' {
				sections[key[:i]] = true
			}
		}
	}
	return sections
}

// underLeaf reports whether key lies below one of the leaf keys
// ("csta.listen.port" below "csta.listen").
func underLeaf(key string, keys []string) (string, bool) {
	for _, k := range keys {
		if strings.HasPrefix(key, k+".") {
			return k, true
		}
	}
	return "", false
}
