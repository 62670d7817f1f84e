package config

import (
	"fmt"
	"slices"
	"strings"
)

// Problem is one thing wrong with the configuration, named by its key path.
type Problem struct {
	Key    string // e.g. "csta.limits.max_frame_bytes"
	Reason string // e.g. "must be between 64 and 65535, got 70000"
}

func (p Problem) String() string { return p.Key + ": " + p.Reason }

// Errors is every problem Load found, in key order. Error() puts each on its
// own line prefixed "config: ".
type Errors struct {
	Problems []Problem
}

func (e *Errors) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = "config: " + p.String()
	}
	return strings.Join(lines, "\n")
}

// problems collects at most one Problem per key: the first one found is the
// cause (a value that failed to decode is not validated again).
type problems struct {
	list []Problem
	seen map[string]bool
}

func (ps *problems) add(key, format string, args ...any) {
	if ps.seen == nil {
		ps.seen = make(map[string]bool)
	}
	if ps.seen[key] {
		return
	}
	ps.seen[key] = true
	ps.list = append(ps.list, Problem{Key: key, Reason: fmt.Sprintf(format, args...)})
}

func (ps *problems) has(key string) bool { return ps.seen[key] }

// err returns nil or *Errors sorted in the order of keys; keys not in that
// order (unknown ones) come last, alphabetically.
func (ps *problems) err(keys []string) error {
	if len(ps.list) == 0 {
		return nil
	}
	rank := func(key string) int {
		if i := strings.IndexByte(key, '['); i > 0 { // an item: "xsi.scope[1]"
			key = key[:i]
		}
		if i := slices.Index(keys, key); i >= 0 {
			return i
		}
		return len(keys)
	}
	list := slices.Clone(ps.list)
	slices.SortStableFunc(list, func(a, b Problem) int {
		if r := rank(a.Key) - rank(b.Key); r != 0 {
			return r
		}
		return strings.Compare(a.Key, b.Key)
	})
	return &Errors{Problems: list}
}
