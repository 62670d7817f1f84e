package postgres

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/broadworks-connector/connector/internal/pgtest"
	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store/storetest"
)

// TestMain runs the tests on the package's one cluster, then checks that
// no goroutine outlived its store (the pool's, the pruner).
func TestMain(m *testing.M) {
	pgtest.Main(m, func() error { return goleak.Find() })
}

var quiet = slog.New(slog.DiscardHandler)

// openAt opens a store on dsn, closed at the test's end.
func openAt(t testing.TB, dsn string, opts Options) *Store {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.Journal.PruneInterval == 0 {
		opts.Journal.PruneInterval = time.Hour
	}
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openTest opens a store on a fresh database of the package's cluster.
func openTest(t testing.TB, opts Options) (*Store, string) {
	t.Helper()
	dsn := pgtest.Shared(t).NewDatabase(t)
	return openAt(t, dsn, opts), dsn
}

// TestConformance: the suite every store driver passes, on PostgreSQL.
func TestConformance(t *testing.T) {
	dsns := map[*Store]string{}
	storetest.Run(t, storetest.Driver{
		Open: func(t *testing.T, o storetest.Options) storetest.Store {
			s, dsn := openTest(t, Options{Journal: journal.Options{Retention: o.Retention}})
			dsns[s] = dsn
			return s
		},
		Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
			s.Close()
			return openAt(t, dsns[s.(*Store)], Options{})
		},
		Prune: func(ctx context.Context, s storetest.Store, now time.Time) (int, error) {
			return s.(*Store).Prune(ctx, now)
		},
	})
}
