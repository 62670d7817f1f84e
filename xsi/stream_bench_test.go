package xsi

import (
	"bytes"
	"io"
	"testing"
)

// BenchmarkStreamEvents: SubscriptionEvents cut by the splitter from an
// in-memory stream, parsed into typed events and delivered on a channel to
// a consumer goroutine (the channel manager's hot path without the network).
// Reports events/s; the target is 50,000/s per core.
func BenchmarkStreamEvents(b *testing.B) {
	var stream []byte
	for _, f := range []string{"agent-state-r19.xml", "dnd-info.xml", "cfa-info.xml", "hoteling-info.xml", "agent-state-flat.xml", "heartbeat.xml"} {
		stream = append(stream, readFixture(b, f)...)
	}
	const perStream = 5 // SubscriptionEvents per copy of the stream (heartbeat excluded)
	const reps = 200
	input := bytes.Repeat(stream, reps)
	b.SetBytes(int64(len(input)) / (perStream * reps))
	out := make(chan Event, EventBuffer)
	done := make(chan int)
	go func() {
		n := 0
		for range out {
			n++
		}
		done <- n
	}()
	b.ReportAllocs()
	b.ResetTimer()
	events := 0
	for events < b.N {
		sp := newSplitter(bytes.NewReader(input), 0)
		for {
			raw, err := sp.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			ev, err := ParseEvent(raw)
			if err != nil {
				b.Fatal(err)
			}
			if se, ok := ev.(*SubscriptionEvent); ok {
				out <- se
				events++
			}
		}
		sp.release()
	}
	close(out)
	if n := <-done; n != events {
		b.Fatalf("delivered %d of %d", n, events)
	}
	b.ReportMetric(float64(events)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkSplitterOnly: the splitter alone (documents/s).
func BenchmarkSplitterOnly(b *testing.B) {
	doc := readFixture(b, "agent-state-r19.xml")
	input := bytes.Repeat(doc, 1000)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	n := 0
	for n < b.N {
		sp := newSplitter(bytes.NewReader(input), 0)
		for {
			if _, err := sp.Next(); err == io.EOF {
				break
			} else if err != nil {
				b.Fatal(err)
			}
			n++
		}
		sp.release()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkParseEvent: etree parse + typing of one document (events/s).
func BenchmarkParseEvent(b *testing.B) {
	doc := rootOf(readFixture(b, "agent-state-r19.xml"))
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseEvent(doc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
