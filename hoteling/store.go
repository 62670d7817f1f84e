package hoteling

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// FileStore is a Store kept in memory and persisted in one file as a log:
// a header line, then one JSON line per change (a saved entry or a deleted
// host), appended and fsynced before Save or Delete returns.
//
// Why a log: the store is on every hot-desk login's and logout's critical
// path, and with thousands of occupied desks rewriting the whole file per
// change made each change O(desks) and serialised every sequence behind one
// fsync. Now a change appends one line, and changes made concurrently
// share one write and one fsync (group commit): whoever finds no flush
// running flushes everything queued so far, the others wait for it.
//
// When the log holds more than CompactFactor lines per live entry (and at
// least minCompactLines), it is rewritten with only the live entries (temp
// file, fsync, rename, directory fsync), so its size stays O(live entries).
//
// Crash guarantee: an entry whose Save returned nil is on disk; after a
// crash, Load returns every saved and not deleted entry. A torn last line
// (a crash in the middle of an append, whose Save therefore never
// returned) is ignored and cut off. A file in the earlier format (one JSON
// object of entries by host, rewritten whole) is loaded and rewritten as a
// log on open.
//
// The zero value with Path set is ready to use. Load rereads the file (it
// may have been written by an earlier connector); Save and Delete open it
// on first use. Only one FileStore (in one process) may write a file at a
// time. It is safe for concurrent use.
type FileStore struct {
	Path string
	// CompactFactor: compact when the log has more than CompactFactor lines
	// per live entry. Default 4.
	CompactFactor int

	mu      sync.Mutex
	flushed sync.Cond // signalled when a flush ends; L is &mu
	opened  bool
	f       *os.File // the log, open for appending
	live    map[string]Remembered
	lines   int // change lines in the log (header not counted)

	queue     []byte // lines not yet written
	queued    uint64 // changes queued so far (sequence numbers 1..queued)
	durable   uint64 // changes 1..durable are on disk
	flushing  bool   // a flush (write + fsync) is running without mu
	rewrite   bool   // the log may end in a partial line (a failed write): compact before appending again
	failedTo  uint64 // the last failed flush covered changes up to failedTo ...
	failedErr error  // ... and failed with this
}

// minCompactLines keeps small stores from compacting on every few changes
// (a variable for the tests).
var minCompactLines = 1024

// logHeader is the first line of a log-format file; it tells the format
// apart from the earlier whole-file JSON object.
const logHeader = `{"hotelingStore":"log/1"}`

// logLine is one change: Save carries the entry, Delete the host.
type logLine struct {
	Save   *Remembered `json:"save,omitempty"`
	Delete string      `json:"delete,omitempty"`
}

// Load rereads the file and returns its entries sorted by host; a missing
// file is an empty store. Load only reads: a file in the earlier format or
// with a torn last line is rewritten on the next change.
func (f *FileStore) Load() ([]Remembered, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.idleLocked(); err != nil {
		return nil, err
	}
	if err := f.closeLocked(); err != nil {
		return nil, err
	}
	if err := f.openLocked(); err != nil {
		return nil, err
	}
	out := make([]Remembered, 0, len(f.live))
	for _, r := range f.live {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].HostUserID < out[j].HostUserID })
	return out, nil
}

// Save adds or replaces the entry of r.HostUserID; it returns once the
// change is on disk.
func (f *FileStore) Save(r Remembered) error {
	line, err := json.Marshal(logLine{Save: &r})
	if err != nil {
		return fmt.Errorf("hoteling: %w", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.ensureOpenLocked(); err != nil {
		return err
	}
	f.live[r.HostUserID] = r
	return f.commitLocked(line)
}

// Delete removes the entry of hostUserID; it returns once the change is on
// disk.
func (f *FileStore) Delete(hostUserID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.ensureOpenLocked(); err != nil {
		return err
	}
	if _, ok := f.live[hostUserID]; !ok {
		return nil
	}
	delete(f.live, hostUserID)
	line, err := json.Marshal(logLine{Delete: hostUserID})
	if err != nil {
		return fmt.Errorf("hoteling: %w", err)
	}
	return f.commitLocked(line)
}

// Close closes the file (after flushing what is queued); a later call
// opens it again.
func (f *FileStore) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.idleLocked()
	return errors.Join(err, f.closeLocked())
}

func (f *FileStore) ensureOpenLocked() error {
	if f.opened {
		return nil
	}
	return f.openLocked()
}

func (f *FileStore) closeLocked() error {
	f.opened = false
	if f.f == nil {
		return nil
	}
	err := f.f.Close()
	f.f = nil
	if err != nil {
		return fmt.Errorf("hoteling: %w", err)
	}
	return nil
}

// commitLocked queues line and returns once it is on disk.
func (f *FileStore) commitLocked(line []byte) error {
	f.queue = append(append(f.queue, line...), '\n')
	f.lines++
	f.queued++
	return f.syncLocked(f.queued)
}

// idleLocked returns, with mu held, once everything queued is on disk and
// no flush uses the file (before it is closed or reread). It loops because
// changes queued while it waited must be flushed too.
func (f *FileStore) idleLocked() error {
	for f.flushing || f.durable < f.queued {
		if err := f.syncLocked(f.queued); err != nil {
			return err
		}
		for f.flushing {
			f.flushed.Wait()
		}
	}
	return nil
}

// syncLocked returns once changes 1..seq are on disk: it either waits for
// the running flush or runs one (without mu) for everything queued so far.
func (f *FileStore) syncLocked(seq uint64) error {
	if f.flushed.L == nil {
		f.flushed.L = &f.mu
	}
	for f.durable < seq {
		if f.flushing {
			f.flushed.Wait()
			if f.durable < seq && f.failedErr != nil && f.failedTo >= seq {
				return f.failedErr
			}
			continue
		}
		if f.rewrite || f.lines > max(f.compactFactor()*len(f.live), minCompactLines) {
			// Everything queued is in f.live: the compacted file holds it.
			if err := f.compactLocked(); err != nil {
				return err
			}
			continue
		}
		if f.f == nil {
			file, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return fmt.Errorf("hoteling: %w", err)
			}
			f.f = file
		}
		f.flushing = true
		buf, upTo, file := f.queue, f.queued, f.f
		f.queue = nil
		f.mu.Unlock()
		_, err := file.Write(buf)
		if err == nil {
			err = file.Sync()
		}
		f.mu.Lock()
		f.flushing = false
		f.flushed.Broadcast()
		if err != nil {
			// The log may now end in part of buf: rewrite it whole before
			// the next append. Entries stay in memory for that rewrite.
			f.rewrite = true
			f.failedTo, f.failedErr = upTo, fmt.Errorf("hoteling: %s: %w", f.Path, err)
			return f.failedErr
		}
		f.durable = upTo
	}
	return nil
}

func (f *FileStore) compactFactor() int {
	if f.CompactFactor > 0 {
		return f.CompactFactor
	}
	return 4
}

// openLocked reads the file into f.live. It writes nothing: a missing or
// empty file, one in the earlier whole-object format or one with a torn
// last line is rewritten (compacted) before the next change is appended,
// and the file is opened for appending on the first flush.
func (f *FileStore) openLocked() error {
	f.live = map[string]Remembered{}
	f.lines, f.queue, f.rewrite = 0, nil, false
	f.durable = f.queued
	data, err := os.ReadFile(f.Path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		data = nil
	case err != nil:
		return fmt.Errorf("hoteling: %w", err)
	}
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		f.rewrite = true
	case bytes.HasPrefix(data, []byte(logHeader+"\n")):
		good, err := f.replay(data)
		if err != nil {
			return err
		}
		// A torn last line: its Save never returned. The rewrite drops it,
		// so that no change is appended to half a line.
		f.rewrite = good < len(data)
	default:
		if err := json.Unmarshal(data, &f.live); err != nil {
			return fmt.Errorf("hoteling: %s: %w", f.Path, err)
		}
		f.rewrite = true // migrate to the log format
	}
	f.opened = true
	return nil
}

// replay applies the change lines of a log file to f.live and returns the
// length of the valid prefix. Only the last line may be torn (no newline,
// or not valid JSON); a bad line before it is corruption.
func (f *FileStore) replay(data []byte) (int, error) {
	good := len(logHeader) + 1
	rest := data[good:]
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return good, nil // torn: no newline
		}
		var l logLine
		err := json.Unmarshal(rest[:i], &l)
		switch {
		case err == nil && l.Save != nil && l.Save.HostUserID != "":
			f.live[l.Save.HostUserID] = *l.Save
		case err == nil && l.Delete != "":
			delete(f.live, l.Delete)
		case i+1 == len(rest):
			return good, nil // torn: the last line, not a change
		case err != nil:
			return 0, fmt.Errorf("hoteling: %s: line at byte %d: %w", f.Path, good, err)
		default:
			return 0, fmt.Errorf("hoteling: %s: line at byte %d is not a change", f.Path, good)
		}
		f.lines++
		good += i + 1
		rest = rest[i+1:]
	}
	return good, nil
}

// compactLocked writes f.live as a new log (temporary file, fsync,
// rename, directory fsync) and appends from then on to it. Everything
// queued is in f.live, so it becomes durable too.
func (f *FileStore) compactLocked() error {
	dir := filepath.Dir(f.Path)
	tmp, err := os.CreateTemp(dir, filepath.Base(f.Path)+".tmp*")
	if err != nil {
		return fmt.Errorf("hoteling: %w", err)
	}
	hosts := make([]string, 0, len(f.live))
	for h := range f.live {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	w := bufio.NewWriter(tmp)
	w.WriteString(logHeader + "\n")
	var werr error
	for _, h := range hosts {
		r := f.live[h]
		line, err := json.Marshal(logLine{Save: &r})
		if err != nil {
			werr = err
			break
		}
		w.Write(line)
		w.WriteByte('\n')
	}
	if werr == nil {
		werr = w.Flush()
	}
	if werr == nil {
		werr = tmp.Sync()
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), f.Path)
	}
	if werr == nil {
		werr = syncDir(dir)
	}
	if werr != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("hoteling: %w", werr)
	}
	// tmp is now the file at Path, positioned at its end.
	if f.f != nil {
		f.f.Close()
	}
	f.f = tmp
	f.lines = len(hosts)
	f.queue = nil
	f.durable = f.queued
	f.rewrite = false
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
