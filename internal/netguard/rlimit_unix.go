//go:build unix

package netguard

import (
	"fmt"
	"syscall"
)

// ProcessBudget raises the soft descriptor limit (RLIMIT_NOFILE) to the hard
// one where the OS allows (Go does so itself at start on most systems) and
// returns a Budget of the soft limit less a reserve (max(64, limit/8), at
// most half), and the soft limit in force.
func ProcessBudget() (*Budget, uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return nil, 0, fmt.Errorf("netguard: getrlimit RLIMIT_NOFILE: %w", err)
	}
	if rl.Cur < rl.Max {
		raised := rl
		raised.Cur = rl.Max
		if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised) == nil { // refused (macOS above OPEN_MAX): keep the soft limit
			rl = raised
		}
	}
	return NewBudget(budgetFor(uint64(rl.Cur))), uint64(rl.Cur), nil
}
