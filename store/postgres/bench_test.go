package postgres

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/xsi"
)

// BenchmarkLoginUnit: the durable writes of one hot-desk login as one unit
// of work (journal begin, the desk's remembered forwarding, the intent)
// and of its logout (journal end, forwarding and intent deleted), by W
// writers at once, each its own agent and desk, on both drivers side by
// side: the embedded bbolt file (group commit) and PostgreSQL (a
// throwaway cluster on the same disk, fsync on, one transaction per
// unit). Metrics: login-us, logout-us (mean latency), commits/login.
//
//	go test -run '^$' -bench LoginUnit -benchtime=2000x ./store/postgres/
func BenchmarkLoginUnit(b *testing.B) {
	type opened struct {
		s       store.Store
		commits func() uint64
	}
	drivers := []struct {
		name string
		open func(b *testing.B) opened
	}{
		{"bbolt", func(b *testing.B) opened {
			s, err := store.Open(filepath.Join(b.TempDir(), "connector.db"), store.Options{Logger: quiet})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return opened{s, s.Commits}
		}},
		{"postgres", func(b *testing.B) opened {
			s, _ := openTest(b, Options{MaxConns: 20})
			return opened{s, s.Commits}
		}},
	}
	for _, d := range drivers {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/W=%d", d.name, writers), func(b *testing.B) {
				if d.name == "postgres" {
					pgtest.Shared(b) // skip (or fail on CI) without PostgreSQL
				}
				o := d.open(b)
				var next, loginNs, logoutNs atomic.Int64
				c0 := o.commits()
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						agent, desk := fmt.Sprint("a", w), fmt.Sprint("d", w)
						user, host := agent+"@example.com", desk+"@example.com"
						for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
							at := t0.Add(time.Duration(i) * time.Second)
							t1 := time.Now()
							err := o.s.Update(context.Background(), func(tx store.Tx) error {
								if _, err := tx.JournalBegin(assoc(agent, desk, at)); err != nil {
									return err
								}
								if err := tx.PutRemembered(hoteling.Remembered{HostUserID: host, GuestUserID: user, ForwardTo: "+15550100",
									PreviousCFA: xsi.Forwarding{Active: true, ForwardToPhoneNumber: "+1999"}}); err != nil {
									return err
								}
								return tx.PutIntent(user, "association", []byte(desk))
							})
							if err != nil {
								b.Error(err)
								return
							}
							t2 := time.Now()
							err = o.s.Update(context.Background(), func(tx store.Tx) error {
								if _, err := tx.JournalEnd(user, at.Add(time.Millisecond), journal.EndLogout, ""); err != nil {
									return err
								}
								if err := tx.DeleteRemembered(host); err != nil {
									return err
								}
								return tx.DeleteIntent(user, "association")
							})
							if err != nil {
								b.Error(err)
								return
							}
							loginNs.Add(int64(t2.Sub(t1)))
							logoutNs.Add(int64(time.Since(t2)))
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				b.ReportMetric(float64(loginNs.Load())/float64(b.N)/1e3, "login-us")
				b.ReportMetric(float64(logoutNs.Load())/float64(b.N)/1e3, "logout-us")
				b.ReportMetric(float64(o.commits()-c0)/float64(b.N), "commits/login")
			})
		}
	}
}
