package csta

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

func TestWriteQueueBoundedFIFO(t *testing.T) {
	q := newWriteQueue()
	if q.frames != nil || q.len() != 0 {
		t.Fatal("a new queue holds frames")
	}
	for i := range 3 {
		if !q.push([]byte{byte(i)}, 3) {
			t.Fatalf("push %d refused under the limit", i)
		}
	}
	if q.push([]byte{9}, 3) {
		t.Fatal("push past the limit accepted")
	}
	select {
	case <-q.ready:
	default:
		t.Fatal("the write loop was not told")
	}
	batch := q.take()
	if len(batch) != 3 || batch[0][0] != 0 || batch[2][0] != 2 {
		t.Fatalf("batch %v, want frames 0, 1, 2 in order", batch)
	}
	if q.len() != 0 || q.frames != nil {
		t.Fatal("take left frames behind")
	}
	q.done(batch)
	if !q.push([]byte{3}, 3) || q.len() != 1 {
		t.Fatal("queue unusable after a batch")
	}
	// A burst's array is not kept once written.
	q2 := newWriteQueue()
	for i := range keptBatch + 1 {
		q2.push([]byte{byte(i)}, 100)
	}
	q2.done(q2.take())
	if q2.spare != nil {
		t.Fatalf("kept a batch of capacity %d", cap(q2.spare))
	}
}

// TestFrameReaderHoldsNoBufferWhenIdle: the read-ahead buffer goes back to
// the pool once drained, and stays while a pipelined frame is part read.
func TestFrameReaderHoldsNoBufferWhenIdle(t *testing.T) {
	var stream []byte
	for i := range 3 {
		stream, _ = AppendFrame(stream, i, []byte(fmt.Sprintf("<doc%d/>", i)))
	}
	pr, pw := io.Pipe()
	go func() {
		pw.Write(stream[:len(stream)-4]) // the third frame cut short
		pw.Write(stream[len(stream)-4:])
		pw.Close()
	}()
	fr := NewFrameReader(pr, MaxFrameSize)
	for i := range 3 {
		f, err := fr.ReadFrame()
		if err != nil || f.InvokeID != i || !bytes.Equal(f.XML, []byte(fmt.Sprintf("<doc%d/>", i))) {
			t.Fatalf("frame %d: %04d %q %v", i, f.InvokeID, f.XML, err)
		}
		if fr.buffered() == 0 && fr.buf != nil {
			t.Fatalf("after frame %d: drained but still holding a buffer", i)
		}
	}
	if fr.buf != nil {
		t.Fatal("idle reader holds a buffer")
	}
	if _, err := fr.ReadFrame(); err != io.EOF {
		t.Fatalf("at the end: %v, want EOF", err)
	}
}

// TestWriteQueueTakesAtMostABatch: a long queue leaves maxBatch frames a
// flush, oldest first, and a frame pushed meanwhile goes behind.
func TestWriteQueueTakesAtMostABatch(t *testing.T) {
	q := newWriteQueue()
	n := 2*maxBatch + 3
	for i := range n {
		q.push([]byte{byte(i)}, 1000)
	}
	next := 0
	for i, want := range []int{maxBatch, maxBatch, 4, 0} {
		batch := q.take()
		if len(batch) != want {
			t.Fatalf("take %d: %d frames, want %d", i, len(batch), want)
		}
		for _, f := range batch {
			if int(f[0]) != next {
				t.Fatalf("take %d: frame %d, want %d", i, f[0], next)
			}
			next++
		}
		if i == 0 {
			q.push([]byte{byte(n)}, 1000)
		}
		q.done(batch)
	}
	if q.frames != nil {
		t.Fatal("emptied queue holds an array")
	}
}
