package hoteling

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/broadworks-connector/connector/xsi"
)

func entry(host, guest string) Remembered {
	return Remembered{HostUserID: host, GuestUserID: guest, ForwardTo: guest + "-number",
		PreviousCFA: xsi.Forwarding{Active: host < "h5", ForwardToPhoneNumber: "+1555" + host}}
}

// op is one Save (guest set) or Delete (guest empty) of a host.
type op struct{ host, guest string }

func apply(t *testing.T, s *FileStore, ops []op) {
	t.Helper()
	for _, o := range ops {
		var err error
		if o.guest != "" {
			err = s.Save(entry(o.host, o.guest))
		} else {
			err = s.Delete(o.host)
		}
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
	}
}

// loadFresh is what a restarted connector finds: a new FileStore on the
// same file (the first one is neither closed nor flushed: a crash).
func loadFresh(t *testing.T, path string) []Remembered {
	t.Helper()
	got, err := (&FileStore{Path: path}).Load()
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func entries(pairs ...string) []Remembered {
	out := []Remembered{}
	for i := 0; i < len(pairs); i += 2 {
		out = append(out, entry(pairs[i], pairs[i+1]))
	}
	return out
}

func TestFileStoreChanges(t *testing.T) {
	tests := []struct {
		name string
		ops  []op
		want []Remembered
	}{
		{"empty", nil, entries()},
		{"one save", []op{{"h1", "g1"}}, entries("h1", "g1")},
		{"sorted by host", []op{{"h3", "g3"}, {"h1", "g1"}, {"h2", "g2"}}, entries("h1", "g1", "h2", "g2", "h3", "g3")},
		{"save replaces", []op{{"h1", "g1"}, {"h1", "g2"}}, entries("h1", "g2")},
		{"delete", []op{{"h1", "g1"}, {"h2", "g2"}, {"h1", ""}}, entries("h2", "g2")},
		{"delete absent", []op{{"h9", ""}}, entries()},
		{"save after delete", []op{{"h1", "g1"}, {"h1", ""}, {"h1", "g3"}}, entries("h1", "g3")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hosts.json")
			s := &FileStore{Path: path}
			apply(t, s, tt.ops)
			if got, err := s.Load(); err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load = %+v, %v; want %+v", got, err, tt.want)
			}
			if got := loadFresh(t, path); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("after restart: %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFileStoreLoadWritesNothing(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hosts.json")
	s := &FileStore{Path: path}
	if got, err := s.Load(); err != nil || len(got) != 0 {
		t.Fatalf("Load = %+v, %v", got, err)
	}
	if err := s.Delete("h1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("file created without a change: %v", err)
	}
	// Load sees changes another store (an earlier connector) made.
	apply(t, &FileStore{Path: path}, []op{{"h1", "g1"}})
	if got, err := s.Load(); err != nil || !reflect.DeepEqual(got, entries("h1", "g1")) {
		t.Errorf("Load = %+v, %v", got, err)
	}
}

func TestFileStoreConcurrentSaves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.json")
	s := &FileStore{Path: path}
	const workers, each = 32, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				host := fmt.Sprintf("h%02d-%02d", w, i)
				if err := s.Save(entry(host, "g")); err != nil {
					errs <- err
				}
				// Every other host leaves again.
				if i%2 == 1 {
					if err := s.Delete(host); err != nil {
						errs <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var want []Remembered
	for w := range workers {
		for i := 0; i < each; i += 2 {
			want = append(want, entry(fmt.Sprintf("h%02d-%02d", w, i), "g"))
		}
	}
	if got := loadFresh(t, path); !reflect.DeepEqual(got, want) {
		t.Errorf("after restart: %d entries, want %d", len(got), len(want))
	}
}

// TestFileStoreLoadDuringSaves: a Load (which rereads the file) while
// Saves are in flight loses none of them.
func TestFileStoreLoadDuringSaves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.json")
	s := &FileStore{Path: path}
	const workers, each = 8, 50
	var wg sync.WaitGroup
	stop := make(chan struct{})
	loads := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				loads <- nil
				return
			default:
			}
			if _, err := s.Load(); err != nil {
				loads <- err
				return
			}
		}
	}()
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if err := s.Save(entry(fmt.Sprintf("h%02d-%02d", w, i), "g")); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	close(stop)
	if err := <-loads; err != nil {
		t.Fatal(err)
	}
	if got := loadFresh(t, path); len(got) != workers*each {
		t.Errorf("after restart: %d entries, want %d", len(got), workers*each)
	}
}

// writeLog writes a log-format file with a save line per host, then tail.
func writeLog(t *testing.T, path string, hosts []string, tail string) {
	t.Helper()
	var b strings.Builder
	b.WriteString(logHeader + "\n")
	for _, h := range hosts {
		r := entry(h, "g-"+h)
		line, err := json.Marshal(logLine{Save: &r})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	b.WriteString(tail)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFileStoreTornTail(t *testing.T) {
	tests := []struct {
		name, tail string
	}{
		{"half a line", `{"save":{"HostUserID":"h3","GuestUs`},
		{"half a line with newline", "{\"save\":{\"HostUserID\":\"h3\"\n"},
		{"zeros", "\x00\x00\x00\x00"},
		{"zeros with newline", "\x00\x00\n"},
		{"newline only", "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hosts.json")
			writeLog(t, path, []string{"h1", "h2"}, tt.tail)
			want := entries("h1", "g-h1", "h2", "g-h2")
			if got := loadFresh(t, path); !reflect.DeepEqual(got, want) {
				t.Fatalf("Load = %+v, want %+v", got, want)
			}
			// The next change goes after the good lines, not after the torn one.
			s := &FileStore{Path: path}
			apply(t, s, []op{{"h4", "g4"}})
			want = append(want, entry("h4", "g4"))
			if got := loadFresh(t, path); !reflect.DeepEqual(got, want) {
				t.Errorf("after a save: %+v, want %+v", got, want)
			}
			if data, _ := os.ReadFile(path); strings.Contains(string(data), "\x00") || strings.Contains(string(data), "GuestUs\n") {
				t.Errorf("torn line still in the file:\n%q", data)
			}
		})
	}
}

func TestFileStoreCorruptLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.json")
	writeLog(t, path, []string{"h1"}, "not json\n"+logHeader+"\n")
	if got, err := (&FileStore{Path: path}).Load(); err == nil {
		t.Errorf("Load = %+v, want an error for a bad line before the last", got)
	}
}

func TestFileStoreCompaction(t *testing.T) {
	defer func(n int) { minCompactLines = n }(minCompactLines)
	minCompactLines = 8
	path := filepath.Join(t.TempDir(), "hosts.json")
	s := &FileStore{Path: path, CompactFactor: 2}
	// Two live hosts, changed again and again: the log must stay short.
	for i := range 100 {
		apply(t, s, []op{{"h1", fmt.Sprintf("g%d", i)}, {"h2", fmt.Sprintf("g%d", i)}, {"h3", "g"}, {"h3", ""}})
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(data), "\n"); n > 1+minCompactLines+1 {
			t.Fatalf("after %d rounds the log has %d lines", i+1, n)
		}
	}
	want := entries("h1", "g99", "h2", "g99")
	if got := loadFresh(t, path); !reflect.DeepEqual(got, want) {
		t.Errorf("after restart: %+v, want %+v", got, want)
	}
	if matches, _ := filepath.Glob(path + ".tmp*"); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}
}

func TestFileStoreOldFormat(t *testing.T) {
	tests := []struct {
		name string
		old  map[string]Remembered
	}{
		{"entries", map[string]Remembered{"h1": entry("h1", "g1"), "h2": entry("h2", "g2")}},
		{"empty object", map[string]Remembered{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "hosts.json")
			// As the earlier FileStore wrote it.
			data, err := json.MarshalIndent(tt.old, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			want := []Remembered{}
			for _, h := range []string{"h1", "h2"} {
				if r, ok := tt.old[h]; ok {
					want = append(want, r)
				}
			}
			s := &FileStore{Path: path}
			if got, err := s.Load(); err != nil || !reflect.DeepEqual(got, want) {
				t.Fatalf("Load = %+v, %v; want %+v", got, err, want)
			}
			if now, _ := os.ReadFile(path); string(now) != string(data) {
				t.Errorf("Load changed the file")
			}
			// The first change migrates the file to the log format.
			apply(t, s, []op{{"h3", "g3"}})
			want = append(want, entry("h3", "g3"))
			if got := loadFresh(t, path); !reflect.DeepEqual(got, want) {
				t.Errorf("after a save: %+v, want %+v", got, want)
			}
			if now, _ := os.ReadFile(path); !strings.HasPrefix(string(now), logHeader+"\n") {
				t.Errorf("not migrated:\n%s", now)
			}
		})
	}
}

func TestFileStoreCloseAndReuse(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hosts.json")
	s := &FileStore{Path: path}
	apply(t, s, []op{{"h1", "g1"}})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	apply(t, s, []op{{"h2", "g2"}})
	if got := loadFresh(t, path); !reflect.DeepEqual(got, entries("h1", "g1", "h2", "g2")) {
		t.Errorf("after reuse: %+v", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkFileStoreSave: concurrent Saves and Deletes on a store of
// 1000 live hosts (group commit: concurrent changes share one fsync).
func BenchmarkFileStoreSave(b *testing.B) {
	path := filepath.Join(b.TempDir(), "hosts.json")
	s := &FileStore{Path: path}
	for i := range 1000 {
		if err := s.Save(entry(fmt.Sprintf("h%04d", i), "g")); err != nil {
			b.Fatal(err)
		}
	}
	b.SetParallelism(16)
	var n sync.Mutex
	next := 0
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			next++
			host := fmt.Sprintf("h%04d", next%1000)
			n.Unlock()
			if err := s.Save(entry(host, "g2")); err != nil {
				b.Error(err)
			}
		}
	})
}

// refusingStore is a store that cannot save (the database is down, the
// write was fenced): Load and Delete work, Save fails.
type refusingStore struct{ saves int }

func (s *refusingStore) Save(Remembered) error {
	s.saves++
	return errors.New("store: postgres: write refused")
}
func (s *refusingStore) Delete(string) error         { return nil }
func (s *refusingStore) Load() ([]Remembered, error) { return nil, nil }

// TestLoginNeedsTheHostRemembered: a login whose host forwarding cannot be
// stored fails before it changes the host (a crash would lose the desk's
// own forwarding), and the memory stays as the store has it.
func TestLoginNeedsTheHostRemembered(t *testing.T) {
	for _, sc := range []scenario{plain, hostForwarding} {
		t.Run(sc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				st := &refusingStore{}
				f, s := sc.start(t, Config{Store: st}, 10*time.Millisecond)
				before := f.snapshot()
				err := loginErr(s, t.Context(), "g1", "desk1", num1)
				var se *StepError
				if !errors.As(err, &se) || se.Step != "remember-host-cfa" {
					t.Fatalf("login = %v, want a StepError at remember-host-cfa", err)
				}
				if st.saves != 1 {
					t.Errorf("%d saves, want 1", st.saves)
				}
				if got := f.actions(); len(got) != 0 {
					t.Errorf("actions after a refused save: %q, want none", got)
				}
				if !maps.Equal(f.snapshot(), before) {
					t.Errorf("BroadWorks changed:\n got %+v\nwant %+v", f.snapshot(), before)
				}
				if r, ok := s.Remembered("desk1"); ok {
					t.Errorf("desk1 remembered in memory only: %+v", r)
				}
			})
		})
	}
}
