package hoteling

import (
	"context"
	"slices"
)

// keyLock serialises sequences on one agent or host. sem holds one token
// while a sequence runs; refs counts the holder and those queued.
type keyLock struct {
	sem  chan struct{}
	refs int
}

func agentKey(id string) string { return "agent:" + id }
func hostKey(id string) string  { return "host:" + id }

// lockKeys takes the locks of keys, always in sorted order so that two
// sequences needing overlapping sets cannot deadlock. It refuses with ErrBusy
// when a key already has a running sequence and QueueLength queued behind
// it — unless admitted: a request that has waited already and comes back
// for more keys (lockFor) is not refused after its wait. The returned func
// releases everything.
func (s *Sequencer) lockKeys(ctx context.Context, keys []string, admitted bool) (func(), error) {
	keys = slices.Clone(keys)
	slices.Sort(keys)
	keys = slices.Compact(keys)

	s.mu.Lock()
	for _, k := range keys {
		if l := s.locks[k]; l != nil && l.refs >= 1+s.cfg.QueueLength && !admitted {
			s.mu.Unlock()
			return nil, ErrBusy
		}
	}
	ls := make([]*keyLock, len(keys))
	for i, k := range keys {
		l := s.locks[k]
		if l == nil {
			l = &keyLock{sem: make(chan struct{}, 1)}
			s.locks[k] = l
		}
		l.refs++
		ls[i] = l
	}
	s.mu.Unlock()

	held := 0
	unregister := func() {
		for i := range held {
			<-ls[i].sem
		}
		s.mu.Lock()
		for i, k := range keys {
			ls[i].refs--
			if ls[i].refs == 0 {
				delete(s.locks, k)
			}
		}
		s.mu.Unlock()
	}
	waiting := false
	for _, l := range ls {
		select {
		case l.sem <- struct{}{}:
			held++
			continue
		default:
		}
		if !waiting { // counted as waiting until every lock is held
			waiting = true
			s.metrics.waiting.Inc()
			defer s.metrics.waiting.Dec()
		}
		select {
		case l.sem <- struct{}{}:
			held++
		case <-ctx.Done():
			unregister()
			return nil, ctx.Err()
		}
	}
	s.metrics.running.Inc()
	return func() { unregister(); s.metrics.running.Dec() }, nil
}

// lockFor takes the locks a sequence needs, as computed by need from the
// view, and checks after taking them that the view did not meanwhile bring
// in another agent or host; if it did, it releases and tries again with the
// union (bounded).
func (s *Sequencer) lockFor(ctx context.Context, need func() []string) (func(), error) {
	keys := need()
	for try := range 4 {
		// Admitted once: a request that waited and now needs another key
		// (the view changed meanwhile: a login took the desk) is not
		// refused for that desk's queue after its wait.
		release, err := s.lockKeys(ctx, keys, try > 0)
		if err != nil {
			return nil, err
		}
		more := need()
		missing := false
		for _, k := range more {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
				missing = true
			}
		}
		if !missing {
			return release, nil
		}
		release()
	}
	return nil, ErrBusy
}

// Busy reports whether a sequence (or a repair) holds or waits for the
// user, as an agent or as a desk.
func (s *Sequencer) Busy(user string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.locks[agentKey(user)] != nil || s.locks[hostKey(user)] != nil
}
