package store

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/hoteling"
	"github.com/broadworks-connector/connector/journal"
)

// BenchmarkLoginWrites: the durable writes of one hot-desk login (the
// desk's remembered forwarding, then the journal record) and of its logout
// (the journal's end, then the forwarding forgotten), by W writers at once,
// each its own agent and desk:
//
//	before    the three stores: hoteling.FileStore (JSON log) and the
//	          journal's own bbolt file, each write its own commit
//	separate  the one store, the same four writes each its own Update
//	          (today's call pattern: the sequencer and the gateway's
//	          journal writer write independently); concurrent writes of
//	          every kind share commits
//	unit      the one store, a login's two writes in one Update and a
//	          logout's two in another (one transaction per login or logout)
//
// Metrics: login-us and logout-us (mean latency of the login's and the
// logout's writes), commits/login (bbolt commits per login+logout, the one
// store only). fsyncs per login: run one sub-benchmark under
// strace -f -c -e trace=fsync,fdatasync with -benchtime=Nx (BENCHMARKS.md).
//
//	go test -run '^$' -bench LoginWrites -benchtime=2000x ./store/
func BenchmarkLoginWrites(b *testing.B) {
	for _, mode := range []string{"before", "separate", "unit"} {
		for _, writers := range []int{1, 16} {
			b.Run(fmt.Sprintf("%s/W=%d", mode, writers), func(b *testing.B) {
				dir := b.TempDir()
				var login, logout func(agent, desk string, at time.Time) error
				var commits func() uint64
				switch mode {
				case "before":
					fs := &hoteling.FileStore{Path: filepath.Join(dir, "connector-hoteling.json")}
					j, err := journal.Open(filepath.Join(dir, "connector-journal.db"), journal.Options{})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { j.Close(); fs.Close() })
					login = func(agent, desk string, at time.Time) error {
						if err := fs.Save(rem(desk+"@example.com", agent+"@example.com")); err != nil {
							return err
						}
						_, err := j.Begin(bgCtx, assoc(agent, desk, at))
						return err
					}
					logout = func(agent, desk string, at time.Time) error {
						if _, err := j.End(bgCtx, agent+"@example.com", at, journal.EndLogout, ""); err != nil {
							return err
						}
						return fs.Delete(desk + "@example.com")
					}
				default:
					s, err := Open(filepath.Join(dir, "connector.db"), Options{Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						b.Fatal(err)
					}
					b.Cleanup(func() { s.Close() })
					commits = s.Commits
					if mode == "separate" {
						login = func(agent, desk string, at time.Time) error {
							if err := s.Remembered().Save(rem(desk+"@example.com", agent+"@example.com")); err != nil {
								return err
							}
							_, err := s.Journal().Begin(bgCtx, assoc(agent, desk, at))
							return err
						}
						logout = func(agent, desk string, at time.Time) error {
							if _, err := s.Journal().End(bgCtx, agent+"@example.com", at, journal.EndLogout, ""); err != nil {
								return err
							}
							return s.Remembered().Delete(desk + "@example.com")
						}
					} else {
						login = func(agent, desk string, at time.Time) error {
							return s.Update(bgCtx, func(tx Tx) error {
								if err := tx.PutRemembered(rem(desk+"@example.com", agent+"@example.com")); err != nil {
									return err
								}
								_, err := tx.JournalBegin(assoc(agent, desk, at))
								return err
							})
						}
						logout = func(agent, desk string, at time.Time) error {
							return s.Update(bgCtx, func(tx Tx) error {
								if _, err := tx.JournalEnd(agent+"@example.com", at, journal.EndLogout, ""); err != nil {
									return err
								}
								return tx.DeleteRemembered(desk + "@example.com")
							})
						}
					}
				}
				var next atomic.Int64
				var loginNs, logoutNs atomic.Int64
				var c0 uint64
				if commits != nil {
					c0 = commits()
				}
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						agent, desk := fmt.Sprint("a", w), fmt.Sprint("d", w)
						for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
							at := t0.Add(time.Duration(i) * time.Second)
							t1 := time.Now()
							if err := login(agent, desk, at); err != nil {
								b.Error(err)
								return
							}
							t2 := time.Now()
							if err := logout(agent, desk, at.Add(time.Millisecond)); err != nil {
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
				if commits != nil {
					b.ReportMetric(float64(commits()-c0)/float64(b.N), "commits/login")
				}
			})
		}
	}
}
