package phonesync

import (
	"github.com/broadworks-connector/connector/store"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRestartKeepsUDPSubscriptions(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001", "1002")
	cfg := testConfig()
	cfg.StateFile = filepath.Join(t.TempDir(), "sip-state.json")
	s1 := startServer(t, cfg, svc)
	udp := newPhone(t, "1001", "UDP", s1.Addr())
	tcp := newPhone(t, "1002", "TCP", s1.Addr())
	if res := udp.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	if res := tcp.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	tcp.nextNotify()
	udp.nextNotify()
	s1.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	last := cseqOf(udp.nextNotify())
	waitFor(t, "state file with the UDP dialog", func() bool {
		st, err := readState(cfg.StateFile, 1<<20)
		return err == nil && len(st.Dialogs) == 1 && st.Dialogs[0].CallID == udp.callID
	})
	if err := s1.crash(); err != nil {
		t.Fatal(err)
	}
	tcp.noNotify(50 * time.Millisecond)
	udp.noNotify(0)

	cfg.Listen = s1.Addr() // the restarted connector listens where it did
	s2 := startServer(t, cfg, svc)
	// The restored dialog is resynchronised with the full state, in the
	// same dialog, with a CSeq above every one used before.
	n := udp.nextNotify()
	checkDialogNotify(t, udp, n, eventFeature)
	if cseqOf(n) <= last {
		t.Fatalf("CSeq %d after restart, last before %d", cseqOf(n), last)
	}
	if !strings.HasPrefix(hdr(n, "Content-Type"), "multipart/mixed") {
		t.Fatalf("Content-Type %q", hdr(n, "Content-Type"))
	}
	last = cseqOf(n)
	s2.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: false})
	n = udp.nextNotify()
	checkDialogNotify(t, udp, n, eventFeature)
	if cseqOf(n) <= last || !strings.Contains(string(n.Body()), "<doNotDisturbOn>false</doNotDisturbOn>") {
		t.Fatalf("NOTIFY after restart: CSeq %d (last %d) %s", cseqOf(n), last, n.Body())
	}
	// The phone can go on refreshing the old dialog.
	if res := udp.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("refresh of restored dialog: %d", res.StatusCode)
	}
	n = udp.nextNotify()
	// The TCP dialog was not kept.
	s2.Publish("1002", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	tcp.noNotify(100 * time.Millisecond)
	if ph := s2.Phones(); len(ph) != 1 || ph[0].DN != "1001" {
		t.Fatalf("Phones() = %+v", ph)
	}

	// The TCP phone subscribes again, as TCP phones do.
	if res := tcp.subscribe(subOpts{newCall: true}); res.StatusCode != 200 {
		t.Fatalf("TCP re-SUBSCRIBE: %d", res.StatusCode)
	}
	tcp.nextNotify()

	// A clean Close terminates the TCP subscription and keeps the UDP one
	// for the next start, without telling the phone anything.
	last = cseqOf(n)
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	if n := tcp.nextNotify(); hdr(n, "Subscription-State") != "terminated;reason=noresource" {
		t.Fatalf("TCP Subscription-State %q", hdr(n, "Subscription-State"))
	}
	udp.noNotify(100 * time.Millisecond)
	st, err := readState(cfg.StateFile, 1<<20)
	if err != nil || len(st.Dialogs) != 1 || st.Dialogs[0].CallID != udp.callID || st.Dialogs[0].CSeq < last {
		t.Fatalf("state after Close: %+v %v", st, err)
	}
	s3 := startServer(t, cfg, svc)
	n = udp.nextNotify()
	checkDialogNotify(t, udp, n, eventFeature)
	if cseqOf(n) <= last {
		t.Fatalf("CSeq %d after the second restart, last before %d", cseqOf(n), last)
	}
	if ph := s3.Phones(); len(ph) != 1 || ph[0].DN != "1001" {
		t.Fatalf("Phones() = %+v", ph)
	}
}

func TestLoadStateDropsExpiredAndBad(t *testing.T) {
	leakCheck(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "state.json")
	future := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	past := time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	dialog := func(dn, transport, expires string) string {
		return `{"dn":"` + dn + `","event":"as-feature-event","event_header":"as-feature-event","call_id":"c-` + dn + `","local_tag":"l","remote_tag":"r","local_uri":"sip:` + dn + `@127.0.0.1","remote_uri":"sip:` + dn + `@127.0.0.1","remote_target":"sip:` + dn + `@127.0.0.1:9","source":"127.0.0.1:9","transport":"` + transport + `","local_host":"127.0.0.1","cseq":7,"expires":"` + expires + `"}`
	}
	data := `{"version":1,"dialogs":[` + dialog("1001", "UDP", future) + `,` + dialog("1002", "UDP", past) + `,` + dialog("1003", "TCP", future) + `]}`
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig()
	cfg.StateFile = file
	s := startServer(t, cfg, newFakeSvc("1001", "1002", "1003"))
	ph := s.Phones()
	if len(ph) != 1 || ph[0].DN != "1001" || ph[0].Transport != "UDP" {
		t.Fatalf("Phones() = %+v", ph)
	}
	s.mu.Lock()
	line := s.lineLocked("1001", eventFeature)
	s.mu.Unlock()
	if len(line) != 1 {
		t.Fatalf("line 1001 holds %d dialogs", len(line))
	}
	sub := line[0]
	sub.mu.Lock()
	cseq := sub.cseq
	sub.mu.Unlock()
	if cseq < 7+restartCSeqGap {
		t.Fatalf("restored CSeq %d", cseq)
	}

	// A corrupt file is ignored, not fatal.
	if err := os.WriteFile(file, []byte("{nonsense"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	s2 := startServer(t, cfg, newFakeSvc())
	if ph := s2.Phones(); len(ph) != 0 {
		t.Fatalf("Phones() = %+v", ph)
	}
}

// NOTIFYs do not write the state file each; a dialog is written again
// before it has used half the restart gap.
func TestCSeqPersistedEveryHalfGap(t *testing.T) {
	leakCheck(t)
	cfg := testConfig()
	cfg.StateFile = filepath.Join(t.TempDir(), "state.json")
	s := startServer(t, cfg, newFakeSvc("1001"), func(s *Server) { s.queueLimit = 2 * restartCSeqGap })
	p := newPhone(t, "1001", "UDP", s.Addr())
	if res := p.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatal(res.StatusCode)
	}
	p.nextNotify()
	waitFor(t, "the dialog written", func() bool {
		st, err := readState(cfg.StateFile, 1<<20)
		return err == nil && len(st.Dialogs) == 1
	})
	for i := range restartCSeqGap / 2 {
		s.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: i%2 == 0})
	}
	var last uint32
	for range restartCSeqGap / 2 {
		last = cseqOf(p.nextNotify())
	}
	waitFor(t, "the CSeq written", func() bool {
		st, err := readState(cfg.StateFile, 1<<20)
		return err == nil && len(st.Dialogs) == 1 && st.Dialogs[0].CSeq+restartCSeqGap > last+restartCSeqGap/2
	})
}

// TestRestartKeepsUDPSubscriptionsInStore: with the dialogs kept in the
// connector's store (sip.persist_dialogs) instead of a file, a UDP dialog
// survives a crash as with a file: the restarted server NOTIFYs it in the
// same dialog with a higher CSeq.
func TestRestartKeepsUDPSubscriptionsInStore(t *testing.T) {
	leakCheck(t)
	st, err := store.Open(filepath.Join(t.TempDir(), "connector.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.Dialogs = st.SIPDialogs()
	s1 := startServer(t, cfg, svc)
	udp := newPhone(t, "1001", "UDP", s1.Addr())
	if res := udp.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	udp.nextNotify()
	s1.Publish("1001", Change{Kind: ChangeDoNotDisturb, DoNotDisturb: true})
	last := cseqOf(udp.nextNotify())
	waitFor(t, "the store with the UDP dialog", func() bool {
		data, err := st.SIPDialogs().LoadDialogs()
		if err != nil || data == nil {
			return false
		}
		snap, err := decodeState(data)
		return err == nil && len(snap.Dialogs) == 1 && snap.Dialogs[0].CallID == udp.callID
	})
	if err := s1.crash(); err != nil {
		t.Fatal(err)
	}
	cfg.Listen = s1.Addr()
	startServer(t, cfg, svc)
	n := udp.nextNotify()
	checkDialogNotify(t, udp, n, eventFeature)
	if cseqOf(n) <= last {
		t.Fatalf("CSeq %d after restart, last before %d", cseqOf(n), last)
	}
}

// TestRestoredDialogWaitsForTheService: a connector that starts (or takes
// over a pair's dialogs) before its link to BroadWorks is up cannot give a
// restored dialog its full state at once; it asks again, and the phone
// gets it in the same dialog once the state can be read.
func TestRestoredDialogWaitsForTheService(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.StateFile = filepath.Join(t.TempDir(), "sip-state.json")
	s1 := startServer(t, cfg, svc)
	udp := newPhone(t, "1001", "UDP", s1.Addr())
	if res := udp.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	last := cseqOf(udp.nextNotify())
	waitFor(t, "state file with the UDP dialog", func() bool {
		st, err := readState(cfg.StateFile, 1<<20)
		return err == nil && len(st.Dialogs) == 1
	})
	if err := s1.crash(); err != nil {
		t.Fatal(err)
	}
	svc.mu.Lock()
	svc.unavailable = 2
	svc.mu.Unlock()
	cfg.Listen = s1.Addr()
	startServer(t, cfg, svc)
	n := udp.nextNotify()
	checkDialogNotify(t, udp, n, eventFeature)
	if cseqOf(n) <= last || !strings.HasPrefix(hdr(n, "Content-Type"), "multipart/mixed") {
		t.Fatalf("after the service came up: CSeq %d (last %d), Content-Type %q", cseqOf(n), last, hdr(n, "Content-Type"))
	}
	svc.mu.Lock()
	left := svc.unavailable
	svc.mu.Unlock()
	if left != 0 {
		t.Errorf("the full state came with %d failures left", left)
	}
}

// TestNoWriteAfterCloseWrote: the persist loop, woken by the dialogs a clean
// Close ends, can come to write once they are gone; Close's write of the
// kept UDP dialog is the last one, and stays.
func TestNoWriteAfterCloseWrote(t *testing.T) {
	leakCheck(t)
	svc := newFakeSvc("1001")
	cfg := testConfig()
	cfg.StateFile = filepath.Join(t.TempDir(), "sip-state.json")
	s := startServer(t, cfg, svc)
	udp := newPhone(t, "1001", "UDP", s.Addr())
	if res := udp.subscribe(subOpts{}); res.StatusCode != 200 {
		t.Fatalf("SUBSCRIBE: %d", res.StatusCode)
	}
	udp.nextNotify()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.saveState(false); err != nil { // the persist loop, late
		t.Fatal(err)
	}
	st, err := readState(cfg.StateFile, 1<<20)
	if err != nil || len(st.Dialogs) != 1 || st.Dialogs[0].CallID != udp.callID {
		t.Fatalf("state after Close and a late write: %+v %v, want the UDP dialog", st, err)
	}
}
