package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/broadworks-connector/connector/store"
)

// TestTakeoverPastAStalledWriter: a fenced write whose client went silent
// mid-transaction (a partition: the server never hears of it again) holds
// the lease row FOR SHARE; the server ends it after
// IdleInTransactionTimeout, so a takeover of the expired lease gets
// through, and the stalled write does not land.
func TestTakeoverPastAStalledWriter(t *testing.T) {
	a, dsn := openTest(t, Options{})
	b := openAt(t, dsn, Options{})
	ctx := t.Context()
	l, err := a.AcquireLease(ctx, "cs1", "A", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	a.SetFence(store.Fence{Name: "cs1", Holder: "A", Token: l.Token})
	pastCheck, silent := make(chan struct{}), make(chan struct{})
	wakeOnce := sync.OnceFunc(func() { close(silent) })
	defer wakeOnce()
	wrote := make(chan error, 1)
	go func() {
		wrote <- a.Update(context.Background(), func(tx store.Tx) error {
			close(pastCheck)
			<-silent // the client says nothing more
			return tx.PutIntent("a", "stalled", []byte("A's"))
		})
	}()
	<-pastCheck
	giveUp := time.Now().Add(30 * time.Second)
	var took store.Lease
	for {
		actx, cancel := context.WithTimeout(ctx, time.Second)
		took, err = b.AcquireLease(actx, "cs1", "B", time.Minute)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(giveUp) {
			t.Fatalf("no takeover past the stalled writer: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if took.Holder != "B" || took.Token != l.Token+1 {
		t.Errorf("takeover %+v, want B with token %d", took, l.Token+1)
	}
	wakeOnce()
	if err := <-wrote; err == nil {
		t.Error("the stalled write committed after the takeover")
	}
	if in, _ := b.Intents().Load(); len(in) != 0 {
		t.Errorf("intents %q, want the stalled write gone", in)
	}
}
