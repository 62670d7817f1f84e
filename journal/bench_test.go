package journal

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
	"time"
)

// Measured 2026-11-21 on the 2-vCPU build machine (shared, load ~2), go test
// -bench . -count 3: Begin 0.41-0.46 ms (two fsyncs per commit); BeginEnd
// 0.80-0.88 ms, so 10,000 logins and logouts one after another take ~8.8 s;
// BeginEndParallel (32 goroutines, group commit) 0.11-0.18 ms, 10,000 in
// ~1.1 s; AtDesk 11 us and AgentBetween (24 results) 114 us in a journal of
// 100,000 associations (JSON decoding dominates).

// BenchmarkBegin: one login recorded (one fsynced bbolt transaction), each
// by a new agent at a new desk.
func BenchmarkBegin(b *testing.B) {
	j := openTest(b, Options{})
	ctx := b.Context()
	i := 0
	for b.Loop() {
		if _, err := j.Begin(ctx, assoc(fmt.Sprint("a", i), fmt.Sprint("d", i), t0.Add(time.Duration(i)*time.Second))); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBeginEnd: one login and its logout (two transactions), 1,000
// agents over 1,000 desks; ns/op times 10,000 is what 10,000 logins cost.
func BenchmarkBeginEnd(b *testing.B) {
	j := openTest(b, Options{})
	ctx := b.Context()
	i := 0
	for b.Loop() {
		agent := fmt.Sprint("a", i%1000)
		start := t0.Add(time.Duration(i) * time.Second)
		if _, err := j.Begin(ctx, assoc(agent, fmt.Sprint("d", (i*7)%1000), start)); err != nil {
			b.Fatal(err)
		}
		if _, err := j.End(ctx, agent+"@example.com", start.Add(time.Second/2), EndLogout, ""); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkBeginEndParallel: the same from 32 goroutines (16 per CPU), a
// login storm: group commit (commit.go) lets them share transactions, so
// ns/op is the cost per login at that concurrency.
func BenchmarkBeginEndParallel(b *testing.B) {
	j := openTest(b, Options{})
	ctx := b.Context()
	var worker atomic.Int64
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		w := worker.Add(1)
		for i := 0; pb.Next(); i++ {
			agent := fmt.Sprint("w", w, "a", i%100)
			start := t0.Add(time.Duration(i) * time.Second)
			if _, err := j.Begin(ctx, assoc(agent, fmt.Sprint("w", w, "d", i%100), start)); err != nil {
				b.Fatal(err)
			}
			if _, err := j.End(ctx, agent+"@example.com", start.Add(time.Second/2), EndLogout, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// filled is a journal with desks × perDesk ended associations, one hour
// each, back to back, agents rotating over desks. Written without fsync
// (bbolt NoSync) to keep the set-up short; the queries do not care.
func filled(b *testing.B, desks, perDesk int) *Journal {
	j := openTest(b, Options{})
	j.db.NoSync = true
	defer func() { j.db.NoSync = false }()
	ctx := b.Context()
	for n := range perDesk {
		for d := range desks {
			agent := fmt.Sprint("a", (d+n)%desks)
			start := t0.Add(time.Duration(n) * time.Hour)
			if _, err := j.Begin(ctx, assoc(agent, fmt.Sprint("d", d), start)); err != nil {
				b.Fatal(err)
			}
			if _, err := j.End(ctx, agent+"@example.com", start.Add(time.Hour), EndLogout, ""); err != nil {
				b.Fatal(err)
			}
		}
	}
	return j
}

// BenchmarkAtDesk: "who was at desk X at T" in a journal of 100,000
// associations (100 desks × 1,000).
func BenchmarkAtDesk(b *testing.B) {
	const desks, perDesk = 100, 1000
	j := filled(b, desks, perDesk)
	ctx := b.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		desk := fmt.Sprint("d", rng.IntN(desks))
		at := t0.Add(time.Duration(rng.Int64N(int64(perDesk) * int64(time.Hour))))
		if _, ok, err := j.AtDesk(ctx, desk, at); err != nil || !ok {
			b.Fatalf("AtDesk(%s, %v) = %v, %v", desk, at, ok, err)
		}
	}
}

// BenchmarkAgentBetween: "where was agent A between T1 and T2" over a day
// (24 associations) in the same journal.
func BenchmarkAgentBetween(b *testing.B) {
	const desks, perDesk = 100, 1000
	j := filled(b, desks, perDesk)
	ctx := b.Context()
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		agent := fmt.Sprint("a", rng.IntN(desks), "@example.com")
		from := t0.Add(time.Duration(rng.IntN(perDesk-24)) * time.Hour)
		as, err := j.AgentBetween(ctx, agent, from, from.Add(24*time.Hour))
		if err != nil || len(as) != 24 {
			b.Fatalf("AgentBetween = %d, %v", len(as), err)
		}
	}
}
