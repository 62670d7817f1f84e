package bench

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// parseCPUList reads a taskset CPU list ("1", "0,2", "0-3,6").
func parseCPUList(s string) (map[int]bool, error) {
	cpus := map[int]bool{}
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, err := strconv.Atoi(lo)
		b := a
		if err == nil && isRange {
			b, err = strconv.Atoi(hi)
		}
		if err != nil || a < 0 || b < a || b >= 1024 {
			return nil, fmt.Errorf("bench: -pin %q: not a CPU list like 1, 0,2 or 0-3", s)
		}
		for c := a; c <= b; c++ {
			cpus[c] = true
		}
	}
	return cpus, nil
}

// loadCPUs is the CPU list of the CPUs in allowed that pin leaves free ("" if none).
func loadCPUs(allowed []int, pin map[int]bool) string {
	var free []string
	for _, c := range allowed {
		if !pin[c] {
			free = append(free, strconv.Itoa(c))
		}
	}
	return strings.Join(free, ",")
}

// pinLoad moves this process — the load: the CTI clients, the simulator,
// the Go phones, and sipp, which inherits it — onto the CPUs that pin leaves
// free, so that the connector, run under `taskset -c pin`, has its CPUs to
// itself. It returns the load's CPU list; "" when pin leaves none free (the
// load then shares the connector's CPUs, as without -pin).
func pinLoad(pin string) (string, error) {
	conn, err := parseCPUList(pin)
	if err != nil {
		return "", err
	}
	var cur unix.CPUSet
	if err := unix.SchedGetaffinity(0, &cur); err != nil {
		return "", fmt.Errorf("bench: reading this process's CPUs: %w", err)
	}
	var allowed []int
	for c := range 1024 {
		if cur.IsSet(c) {
			allowed = append(allowed, c)
		}
	}
	list := loadCPUs(allowed, conn)
	if list == "" {
		return "", nil
	}
	ts, err := exec.LookPath("taskset")
	if err != nil {
		return "", fmt.Errorf("bench: -pin needs taskset (util-linux): %w", err)
	}
	// -a: every thread of the process; threads made later inherit the mask.
	if out, err := exec.Command(ts, "-a", "-p", "-c", list, strconv.Itoa(os.Getpid())).CombinedOutput(); err != nil {
		return "", fmt.Errorf("bench: moving the load to CPUs %s: %v: %s", list, err, strings.TrimSpace(string(out)))
	}
	return list, nil
}
