package gateway

import (
	"sync"
	"testing"
	"time"
)

// slowPromises is a PromiseStore whose saves of one user block until
// released, as a save waits for its disk sync.
type slowPromises struct {
	memPromises
	blocked string
	entered chan struct{} // the blocked user's save has started
	release chan struct{}
}

func (s *slowPromises) SavePromise(user string, value []byte) error {
	if user == s.blocked {
		s.entered <- struct{}{}
		<-s.release
	}
	return s.memPromises.SavePromise(user, value)
}

// TestSavesOfDifferentUsersGoSideBySide: one user's promise save waiting on
// the store holds up no other user's (each login's intent then shares a
// group commit with the others instead of waiting for each one before it).
func TestSavesOfDifferentUsersGoSideBySide(t *testing.T) {
	const alice, bob = "alice@example.com", "bob@example.com"
	store := &slowPromises{blocked: alice, entered: make(chan struct{}), release: make(chan struct{})}
	h := newHarness(t)
	h.g.deps.Promises = store
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(store.release)
	wg.Go(func() { h.g.intend(alice, "desk@example.com", "") })
	<-store.entered
	bobDone := make(chan struct{})
	wg.Go(func() {
		h.g.intend(bob, "desk2@example.com", "")
		close(bobDone)
	})
	select {
	case <-bobDone:
	case <-time.After(10 * time.Second): // a deadline for a hang, not a timing check
		t.Fatal("bob's save waits for alice's")
	}
	store.mu.Lock()
	defer store.mu.Unlock()
	if _, ok := store.saved[bob]; !ok {
		t.Errorf("bob's intent not saved: %q", store.ops)
	}
}

// TestSaveOrderPerUser: a user's saves take its lock one at a time; another
// user's lock is free meanwhile, and an entry is gone once nobody holds or
// waits for it.
func TestSaveOrderPerUser(t *testing.T) {
	var o saveOrder
	var running, ran, most int
	var mu sync.Mutex
	unlock := o.lock("a")
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			defer o.lock("a")()
			mu.Lock()
			running++
			most = max(most, running)
			mu.Unlock()
			time.Sleep(time.Millisecond) // room for another to overlap, if it could
			mu.Lock()
			running--
			ran++
			mu.Unlock()
		})
	}
	waiting := func() int {
		o.mu.Lock()
		defer o.mu.Unlock()
		if s := o.users["a"]; s != nil {
			return s.users
		}
		return 0
	}
	for deadline := time.Now().Add(10 * time.Second); waiting() < 4; {
		if time.Now().After(deadline) {
			t.Fatalf("%d holding or waiting for a's lock, want 4", waiting())
		}
		time.Sleep(time.Millisecond)
	}
	free := make(chan struct{})
	go func() { o.lock("b")(); close(free) }()
	select {
	case <-free:
	case <-time.After(10 * time.Second):
		t.Fatal("b's lock waits for a's")
	}
	mu.Lock()
	if ran != 0 {
		t.Errorf("%d saves ran while the lock was held", ran)
	}
	mu.Unlock()
	unlock()
	wg.Wait()
	if ran != 3 || most != 1 {
		t.Errorf("%d saves ran, at most %d at once; want 3, one at a time", ran, most)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.users) != 0 {
		t.Errorf("entries left: %v", o.users)
	}
}
