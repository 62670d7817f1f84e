package store_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/journal"
	"github.com/broadworks-connector/connector/store"
	"github.com/broadworks-connector/connector/store/storetest"
)

// TestConformance: the suite every store driver passes, on bbolt.
func TestConformance(t *testing.T) {
	open := func(t *testing.T, path string, retention time.Duration) *store.Bolt {
		s, err := store.Open(path, store.Options{
			Journal:     journal.Options{Retention: retention, PruneInterval: time.Hour},
			LockTimeout: 5 * time.Second, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	storetest.Run(t, storetest.Driver{
		Open: func(t *testing.T, o storetest.Options) storetest.Store {
			return open(t, filepath.Join(t.TempDir(), "connector.db"), o.Retention)
		},
		Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
			s.Close()
			return open(t, s.(*store.Bolt).Path(), 0)
		},
		Prune: func(ctx context.Context, s storetest.Store, now time.Time) (int, error) {
			return s.(*store.Bolt).JournalFile().Prune(ctx, now)
		},
	})
}
