package hoteling

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
)

// FileStore is a Store in one JSON file, rewritten atomically (temporary
// file, fsync, rename) on every change. The entries are few (one per
// occupied hot desk), so rewriting the whole file is cheap.
type FileStore struct {
	Path string

	mu sync.Mutex
}

// Load reads the entries; a missing file is an empty store.
func (f *FileStore) Load() ([]Remembered, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read()
	if err != nil {
		return nil, err
	}
	out := make([]Remembered, 0, len(m))
	for _, r := range m {
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].HostUserID < out[j].HostUserID })
	return out, nil
}

// Save adds or replaces the entry of r.HostUserID.
func (f *FileStore) Save(r Remembered) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read()
	if err != nil {
		return err
	}
	m[r.HostUserID] = r
	return f.write(m)
}

// Delete removes the entry of hostUserID.
func (f *FileStore) Delete(hostUserID string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	m, err := f.read()
	if err != nil {
		return err
	}
	if _, ok := m[hostUserID]; !ok {
		return nil
	}
	delete(m, hostUserID)
	return f.write(m)
}

func (f *FileStore) read() (map[string]Remembered, error) {
	m := map[string]Remembered{}
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, os.ErrNotExist) {
		return m, nil
	}
	if err != nil {
		return nil, fmt.Errorf("hoteling: %w", err)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("hoteling: %s: %w", f.Path, err)
	}
	return m, nil
}

func (f *FileStore) write(m map[string]Remembered) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("hoteling: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.Path), filepath.Base(f.Path)+".tmp*")
	if err != nil {
		return fmt.Errorf("hoteling: %w", err)
	}
	_, werr := tmp.Write(data)
	if werr == nil {
		werr = tmp.Sync()
	}
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(tmp.Name(), f.Path)
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("hoteling: %w", werr)
	}
	return nil
}
