package phonesync

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/emiago/sipgo/sip"
)

// UDP subscriptions survive a restart (issue 5, "Restart and failover"):
// their dialog state is written to cfg.StateFile (as it changes, and last by
// Close, which leaves them active rather than terminating them) and read
// back at Start, which NOTIFYs each the full state in the same dialog. TCP
// and TLS dialogs die with their connection, so they are not kept: those
// phones re-subscribe and get the full state.
//
// Writes are debounced (one write per saveDelay however many changes) and
// atomic (temp file, fsync, rename). NOTIFY CSeqs are not written as they
// go: restored dialogs jump their CSeq by restartCSeqGap, and a dialog is
// written again before it has used half of that, so the phone never sees a
// CSeq go backwards (RFC 3261 §12.2.2) and NOTIFY traffic costs no writes.
// A crash loses at most saveDelay of new subscriptions and refreshes; a
// phone whose refresh was lost gets 481 on its next one and subscribes
// afresh.

const stateVersion = 1

// DialogStore keeps the dialog snapshot (this package's JSON) somewhere
// durable other than StateFile: the connector's store. SaveDialogs returns
// once the snapshot is on disk; LoadDialogs returns nil when none was saved.
type DialogStore interface {
	SaveDialogs(snapshot []byte) error
	LoadDialogs() ([]byte, error)
}

// persisting reports whether UDP dialogs are kept across restarts.
func (s *Server) persisting() bool { return s.cfg.Dialogs != nil || s.cfg.StateFile != "" }

// stateName names where the dialogs are kept, for the log.
func (s *Server) stateName() string {
	if s.cfg.Dialogs != nil {
		return "store"
	}
	return s.cfg.StateFile
}

type stateFile struct {
	Version int               `json:"version"`
	Saved   time.Time         `json:"saved"`
	Dialogs []persistedDialog `json:"dialogs"`
}

type persistedDialog struct {
	DN           string    `json:"dn"`
	Event        string    `json:"event"`
	EventHeader  string    `json:"event_header"`
	CallID       string    `json:"call_id"`
	LocalTag     string    `json:"local_tag"`
	RemoteTag    string    `json:"remote_tag"`
	LocalURI     string    `json:"local_uri"`
	RemoteURI    string    `json:"remote_uri"`
	RemoteTarget string    `json:"remote_target"`
	Source       string    `json:"source"`
	Transport    string    `json:"transport"`
	LocalHost    string    `json:"local_host"`
	CSeq         uint32    `json:"cseq"`
	Expires      time.Time `json:"expires"`
	// RouteSet is the dialog's route set, first hop first. Absent (a file
	// from before route sets were kept, or a phone reached straight) is
	// none, so stateVersion stays.
	RouteSet []string `json:"route_set,omitempty"`
}

// markDirty asks the persistence loop for a write; it never blocks.
func (s *Server) markDirty(*subscription) { s.markDirtyLocked() }

// markDirtyLocked is markDirty for callers holding s.mu (it takes no lock).
func (s *Server) markDirtyLocked() {
	if !s.persisting() {
		return
	}
	select {
	case s.dirty <- struct{}{}:
	default:
	}
}

func (s *Server) persistLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.dirty:
		}
		select { // gather what else changes meanwhile into the same write
		case <-s.ctx.Done():
			return
		case <-time.After(s.saveDelay):
		}
		if err := s.saveState(false); err != nil {
			s.log.Warn("saving SIP dialog state", "file", s.stateName(), "err", err)
		}
	}
}

func (s *Server) snapshot() []persistedDialog {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]persistedDialog, 0, len(s.subs))
	for _, sub := range s.subs {
		sub.mu.Lock()
		if sub.transport == "UDP" && !sub.dead {
			out = append(out, persistedDialog{
				DN: sub.dn, Event: sub.event, EventHeader: sub.eventHeader,
				CallID: sub.callID, LocalTag: sub.localTag, RemoteTag: sub.remoteTag,
				LocalURI: sub.localURI.String(), RemoteURI: sub.remoteURI.String(),
				RemoteTarget: sub.remoteTarget.String(), Source: sub.source, Transport: sub.transport,
				LocalHost: sub.localHost, CSeq: sub.cseq, Expires: sub.expires,
				RouteSet: routeStrings(sub.routes),
			})
			sub.savedCSeq = sub.cseq
		}
		sub.mu.Unlock()
	}
	return out
}

// saveState writes the UDP dialogs atomically. Close's write is the last
// (final): the persist loop, woken by the dialogs Close ends, may come to
// write after it, once the dialogs are gone, and must not write the empty
// list over the kept ones.
func (s *Server) saveState(final bool) error {
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	if s.savedFinal {
		return nil
	}
	s.savedFinal = final
	data, err := json.MarshalIndent(stateFile{Version: stateVersion, Saved: time.Now().UTC(), Dialogs: s.snapshot()}, "", "  ")
	if err != nil {
		return fmt.Errorf("phonesync: state: %w", err)
	}
	if s.cfg.Dialogs != nil {
		if err := s.cfg.Dialogs.SaveDialogs(data); err != nil {
			return fmt.Errorf("phonesync: state: %w", err)
		}
		return nil
	}
	dir, base := filepath.Split(s.cfg.StateFile)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*")
	if err != nil {
		return fmt.Errorf("phonesync: state: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("phonesync: state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("phonesync: state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("phonesync: state: %w", err)
	}
	if err := os.Rename(tmp.Name(), s.cfg.StateFile); err != nil {
		return fmt.Errorf("phonesync: state: %w", err)
	}
	return nil
}

// readState reads the state file; a missing file is an empty state.
func readState(path string, maxBytes int64) (stateFile, error) {
	var st stateFile
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return st, err
	}
	if int64(len(data)) > maxBytes {
		return st, fmt.Errorf("larger than %d bytes", maxBytes)
	}
	return decodeState(data)
}

// decodeState parses a snapshot (a file's content, or the store's).
func decodeState(data []byte) (stateFile, error) {
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return st, err
	}
	if st.Version != stateVersion {
		return stateFile{}, fmt.Errorf("version %d, want %d", st.Version, stateVersion)
	}
	return st, nil
}

// loadState brings back the persisted UDP dialogs that have not expired
// and returns them (the caller NOTIFYs them the full state).
func (s *Server) loadState() []*subscription {
	maxBytes := int64(s.cfg.MaxSubscriptions)*2048 + 1<<20
	var st stateFile
	var err error
	if s.cfg.Dialogs != nil {
		var data []byte
		data, err = s.cfg.Dialogs.LoadDialogs()
		switch {
		case err != nil:
		case data == nil: // none saved yet
		case int64(len(data)) > maxBytes:
			err = fmt.Errorf("larger than %d bytes", maxBytes)
		default:
			st, err = decodeState(data)
		}
	} else {
		st, err = readState(s.cfg.StateFile, maxBytes)
	}
	if err != nil {
		s.log.Warn("SIP dialog state not loaded", "file", s.stateName(), "err", err)
		return nil
	}
	now := time.Now()
	var restored []*subscription
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range st.Dialogs {
		sub, ok := s.restore(d, now)
		if !ok {
			continue
		}
		// One dialog per device, as insert keeps it: the later-expiring.
		var old *subscription
		for _, o := range s.lineLocked(sub.dn, sub.event) {
			if o.device == sub.device {
				old = o
				break
			}
		}
		if old != nil {
			if !sub.expires.After(old.expires) {
				continue
			}
			s.unlinkLocked(old)
			restored = withoutSub(restored, old)
		}
		if len(s.subs) >= s.limits().maxSubscriptions {
			break
		}
		if len(s.lineLocked(sub.dn, sub.event)) >= s.limits().maxPerLine {
			continue
		}
		s.linkLocked(sub)
		if s.phones[sub.dn] == nil {
			s.phones[sub.dn] = &phoneState{inService: true, lastSeen: now}
		}
		restored = append(restored, sub)
	}
	if len(restored) > 0 {
		s.log.Info("SIP dialogs restored", "count", len(restored), "file", s.stateName())
	}
	return restored
}

func withoutSub(subs []*subscription, sub *subscription) []*subscription {
	for i, x := range subs {
		if x == sub {
			return append(subs[:i], subs[i+1:]...)
		}
	}
	return subs
}

func (s *Server) restore(d persistedDialog, now time.Time) (*subscription, bool) {
	if d.Transport != "UDP" || !d.Expires.After(now) || d.DN == "" || d.CallID == "" || d.LocalTag == "" || d.RemoteTag == "" || d.Source == "" {
		return nil, false
	}
	if d.Event != eventFeature && d.Event != eventHoteling {
		return nil, false
	}
	var local, remote, target sip.Uri
	if sip.ParseUri(d.LocalURI, &local) != nil || sip.ParseUri(d.RemoteURI, &remote) != nil || sip.ParseUri(d.RemoteTarget, &target) != nil {
		return nil, false
	}
	routes, ok := parseRoutes(d.RouteSet)
	if !ok {
		return nil, false
	}
	host := s.bindHost
	if host == "" {
		host = d.LocalHost
	}
	return &subscription{
		id:           dialogID{d.CallID, d.RemoteTag},
		key:          subKey{d.DN, d.Event},
		dn:           d.DN,
		event:        d.Event,
		eventHeader:  d.EventHeader,
		callID:       d.CallID,
		localTag:     d.LocalTag,
		remoteTag:    d.RemoteTag,
		localURI:     local,
		remoteURI:    remote,
		routes:       routes,
		remoteTarget: target,
		device:       deviceOf(target, d.Source, "UDP"),
		source:       d.Source,
		transport:    "UDP",
		localHost:    host,
		localPort:    s.port,
		cseq:         d.CSeq + restartCSeqGap,
		expires:      d.Expires,
	}, true
}
