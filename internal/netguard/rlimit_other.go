//go:build !unix

package netguard

// ProcessBudget returns no budget where descriptor limits are not known
// (a nil Budget caps nothing).
func ProcessBudget() (*Budget, uint64, error) { return nil, 0, nil }
