package xspsim

import (
	"math/rand/v2"
	"net/http"
	"time"
)

const streamWriteTimeout = 10 * time.Second

// stream runs the channel's write loop on the streaming response until the
// channel ends. Documents are framed into chunks per Config.Chunking.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, ch *channel) {
	rc := http.NewResponseController(w)
	rng := rand.New(rand.NewPCG(ch.chunkSeed1, ch.chunkSeq))
	mode := s.cfg.Chunking.Mode
	window := s.cfg.Chunking.CoalesceWindow
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	unflushed := false

	flush := func() bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if err := rc.Flush(); err != nil {
			return false
		}
		unflushed = false
		return true
	}
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		_, err := w.Write(b)
		return err == nil
	}
	lost := func() {
		s.mu.Lock()
		s.removeLocked(ch)
		s.mu.Unlock()
	}

	for {
		var tc <-chan time.Time
		if unflushed {
			tc = timer.C
		}
		select {
		case <-ch.done:
			panic(http.ErrAbortHandler) // drop the connection without a final chunk
		case <-s.quit:
			panic(http.ErrAbortHandler)
		case <-r.Context().Done():
			lost()
			return
		case <-tc:
			if !flush() {
				lost()
				return
			}
		case it := <-ch.q:
			s.trace(it.data)
			if sep := s.cfg.Chunking.Separator; sep != "" && !it.cut {
				it.data = append(it.data[:len(it.data):len(it.data)], sep...)
			}
			if it.cut {
				half := it.data[:len(it.data)/2]
				write(half)
				flush()
				lost()
				panic(http.ErrAbortHandler)
			}
			m := mode
			if m == ChunkRandom {
				m = ChunkMode(rng.IntN(3))
			}
			if it.last {
				m = ChunkWhole
			}
			ok := true
			switch m {
			case ChunkSplit:
				pieces := 2 + rng.IntN(s.cfg.Chunking.MaxPieces-1)
				ok = s.writeSplit(it.data, pieces, rng, write, flush)
			case ChunkCoalesce:
				ok = write(it.data)
				if ok && !unflushed {
					unflushed = true
					timer.Reset(window)
				}
			default:
				ok = write(it.data) && flush()
			}
			if !ok {
				lost()
				return
			}
			if it.last {
				return
			}
		}
	}
}

// writeSplit writes b as n chunks cut at random points.
func (s *Server) writeSplit(b []byte, n int, rng *rand.Rand, write func([]byte) bool, flush func() bool) bool {
	if n > len(b) {
		n = len(b)
	}
	start := 0
	for i := 1; i <= n; i++ {
		end := len(b)
		if i < n {
			remaining := len(b) - start - (n - i)
			end = start + 1 + rng.IntN(max(remaining, 1))
		}
		if !write(b[start:end]) || !flush() {
			return false
		}
		start = end
	}
	return true
}
