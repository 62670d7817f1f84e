package pgtest

import (
	"context"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

// TestDatabase: a fresh database per test, each empty, on a server that
// really syncs its commits.
func TestDatabase(t *testing.T) {
	c := Shared(t)
	dsn1, dsn2 := c.NewDatabase(t), c.NewDatabase(t)
	if dsn1 == dsn2 {
		t.Fatalf("two databases share the DSN %s", dsn1)
	}
	ctx := t.Context()
	conn, err := pgx.Connect(ctx, dsn1)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "on" {
		t.Fatalf("fsync = %q, %v; want on", fsync, err)
	}
	conn2, err := pgx.Connect(ctx, dsn2)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(context.Background())
	var n int
	if err := conn2.QueryRow(ctx, "SELECT count(*) FROM pg_tables WHERE tablename = 't'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("second database sees %d tables t (%v); want a fresh one", n, err)
	}
}

// TestOwnStopRemoves: Stop kills the server and removes its folder.
func TestOwnStopRemoves(t *testing.T) {
	c, err := Start()
	if err != nil {
		Unavailable(t, err)
	}
	if err := c.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop after Kill: %v", err)
	}
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Fatalf("folder %s still there after Stop (%v)", c.dir, err)
	}
}
