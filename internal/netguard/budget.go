package netguard

import (
	"math"
	"sync/atomic"
)

// Budget is a cap on the connections open across all guarded listeners of a
// process: the descriptors they may hold. A nil *Budget is no cap.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// NewBudget is a Budget of n connections (at least 1).
func NewBudget(n int) *Budget { return &Budget{limit: int64(max(n, 1))} }

// Cap is the budget's size; math.MaxInt for a nil Budget.
func (b *Budget) Cap() int {
	if b == nil {
		return math.MaxInt
	}
	return int(b.limit)
}

// InUse is the number of connections holding a part of the budget.
func (b *Budget) InUse() int {
	if b == nil {
		return 0
	}
	return int(b.used.Load())
}

// Acquire takes one part of the budget; false when it is spent. A caller
// that opens descriptors outside a Listener (an outbound connection) may use
// it too, and must Release once.
func (b *Budget) Acquire() bool {
	if b == nil {
		return true
	}
	for {
		n := b.used.Load()
		if n >= b.limit {
			return false
		}
		if b.used.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release gives back what Acquire took.
func (b *Budget) Release() {
	if b != nil {
		b.used.Add(-1)
	}
}

// budgetFor is the budget for a descriptor limit: the limit minus a
// reserve of max(64, limit/8) for files, outbound connections and the
// listeners themselves, but never less than half the limit.
func budgetFor(limit uint64) int {
	const most = 1 << 30 // RLIM_INFINITY and the like
	l := int(min(limit, most))
	return max(l-max(64, l/8), l/2, 1)
}
