package bench

import (
	"maps"
	"slices"
	"testing"
)

func TestCPUListForTheLoad(t *testing.T) {
	for _, tc := range []struct {
		pin     string
		allowed []int
		cpus    []int
		load    string
		bad     bool
	}{
		{pin: "1", allowed: []int{0, 1}, cpus: []int{1}, load: "0"},
		{pin: "0", allowed: []int{0, 1, 2, 3}, cpus: []int{0}, load: "1,2,3"},
		{pin: "0,2", allowed: []int{0, 1, 2, 3}, cpus: []int{0, 2}, load: "1,3"},
		{pin: "0-2", allowed: []int{0, 1, 2, 3}, cpus: []int{0, 1, 2}, load: "3"},
		{pin: "0-1", allowed: []int{0, 1}, cpus: []int{0, 1}, load: ""}, // nothing left: the load shares
		{pin: "1", allowed: []int{2, 3}, cpus: []int{1}, load: "2,3"},   // already elsewhere
		{pin: "", bad: true},
		{pin: "a", bad: true},
		{pin: "2-1", bad: true},
		{pin: "-1", bad: true},
		{pin: "0-4096", bad: true},
	} {
		cpus, err := parseCPUList(tc.pin)
		if tc.bad {
			if err == nil {
				t.Errorf("-pin %q accepted: %v", tc.pin, cpus)
			}
			continue
		}
		if err != nil {
			t.Errorf("-pin %q: %v", tc.pin, err)
			continue
		}
		if got := slices.Sorted(maps.Keys(cpus)); !slices.Equal(got, tc.cpus) {
			t.Errorf("-pin %q: CPUs %v, want %v", tc.pin, got, tc.cpus)
		}
		if got := loadCPUs(tc.allowed, cpus); got != tc.load {
			t.Errorf("-pin %q of %v: load on %q, want %q", tc.pin, tc.allowed, got, tc.load)
		}
	}
}
