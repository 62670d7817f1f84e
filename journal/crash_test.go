package journal

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestCrashKeepsAcknowledged: a child process (this test binary, re-run with
// JOURNAL_CHILD=1) begins and ends associations in a loop and prints each ID
// as soon as Begin or End returns, which is when the gateway would
// acknowledge the login or logout. The parent kills it with SIGKILL (no
// clean shutdown, no deferred Close) after a number of lines, reopens the
// file, and finds every acknowledged association and end there and the
// file consistent. Several rounds with different kill points share one
// file, so later rounds also write after a crash; the later ones have
// several writers at once, so the kill also hits group commits.
func TestCrashKeepsAcknowledged(t *testing.T) {
	if os.Getenv("JOURNAL_CHILD") == "1" {
		crashChild()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "journal.db")
	for round, kill := range []struct{ afterLines, writers int }{
		{1, 1}, {2, 1}, {37, 1}, {401, 1}, {3, 4}, {150, 4}, {801, 8},
	} {
		acked := runAndKill(t, path, round, kill.afterLines, kill.writers)
		j, err := Open(path, Options{LockTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		checkConsistent(t, j)
		open, err := j.OpenAssociations(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		thisRound := 0 // earlier rounds left theirs open too
		for _, a := range open {
			if strings.HasPrefix(a.AgentUserID, fmt.Sprintf("r%d-", round)) {
				thisRound++
			}
		}
		stillOpen, unackedEnds := 0, 0
		err = j.db.View(func(tx *bolt.Tx) error {
			b := buckets(tx)
			for _, ack := range acked {
				a, err := b.get(ack.id)
				if err != nil {
					return fmt.Errorf("round %d: acknowledged association %d: %w", round, ack.id, err)
				}
				if a.AgentUserID != ack.agent {
					return fmt.Errorf("round %d: association %d is %s's, acknowledged for %s", round, ack.id, a.AgentUserID, ack.agent)
				}
				switch {
				case ack.ended && (a.Open() || a.EndedBy != EndLogout):
					return fmt.Errorf("round %d: acknowledged end of association %d lost: %+v", round, ack.id, a)
				case !ack.ended && a.Open():
					stillOpen++
				case !ack.ended:
					// The End in flight in each writer when the child died
					// may have been written but not acknowledged; only those.
					if unackedEnds++; unackedEnds > kill.writers {
						return fmt.Errorf("round %d: association %d also ended without an acknowledged End: %+v", round, ack.id, a)
					}
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Every open association the journal holds is acknowledged, but for
		// at most one Begin per writer that committed while the child died.
		if thisRound < stillOpen || thisRound > stillOpen+kill.writers {
			t.Fatalf("round %d: %d open associations, %d acknowledged open", round, thisRound, stillOpen)
		}
		t.Logf("round %d: %d writers killed after %d lines; all %d acknowledged associations found, %d open", round, kill.writers, kill.afterLines, len(acked), thisRound)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

type acknowledged struct {
	id    ID
	agent string
	ended bool
}

// runAndKill runs one child on path, kills it after killAfter lines, and
// returns what it acknowledged (all complete lines it printed, including
// any written between the parent's read and the kill).
func runAndKill(t *testing.T, path string, round, killAfter, writers int) []*acknowledged {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKeepsAcknowledged$", "-test.count=1")
	cmd.Env = append(os.Environ(), "JOURNAL_CHILD=1", "JOURNAL_PATH="+path, "JOURNAL_ROUND="+strconv.Itoa(round), "JOURNAL_WRITERS="+strconv.Itoa(writers))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	var acked []*acknowledged
	byID := map[ID]*acknowledged{}
	lines, killed := 0, false
	deadline := time.AfterFunc(8*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if !errors.Is(err, io.EOF) {
				t.Fatal(err)
			}
			break // a partial last line was never printed whole: not acknowledged
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("child printed %q", line)
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("child printed %q", line)
		}
		id := ID(n)
		switch f[0] {
		case "B":
			a := &acknowledged{id: id, agent: f[2]}
			acked = append(acked, a)
			byID[id] = a
		case "E":
			if byID[id] == nil {
				t.Fatalf("child ended %d before beginning it", id)
			}
			byID[id].ended = true
		default:
			t.Fatalf("child printed %q", line)
		}
		if lines++; lines == killAfter && !killed {
			killed = true
			if err := cmd.Process.Kill(); err != nil { // SIGKILL
				t.Fatal(err)
			}
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != -1 || !killed {
		t.Fatalf("round %d: child was not killed by the test: %v (killed %v, %d lines)", round, err, killed, lines)
	}
	return acked
}

// crashChild is the child side: begin and end until killed.
func crashChild() {
	path, round := os.Getenv("JOURNAL_PATH"), os.Getenv("JOURNAL_ROUND")
	j, err := Open(path, Options{LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	stop := time.Now().Add(20 * time.Second) // in case nobody kills us
	writers, _ := strconv.Atoi(os.Getenv("JOURNAL_WRITERS"))
	var wg sync.WaitGroup
	for w := range max(writers, 1) {
		prefix := fmt.Sprintf("r%s-w%d-", round, w)
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				agent := fmt.Sprintf("%sa%d", prefix, i)
				start := base.Add(time.Duration(i) * time.Second)
				id, err := j.Begin(ctx, Association{
					AgentID: agent, AgentUserID: agent,
					DeviceID: fmt.Sprintf("%sd%d", prefix, i%50), DeskUserID: fmt.Sprintf("%sdesk%d", prefix, i%50),
					Start: start,
				})
				if errors.Is(err, ErrDeskOccupied) {
					// Every 50th agent finds the desk still held by the one it
					// left open 50 logins ago: end that one first.
					prev := fmt.Sprintf("%sa%d", prefix, i-50)
					ended, err2 := j.End(ctx, prev, start, EndLogout, "")
					if err2 != nil {
						fmt.Fprintln(os.Stderr, "child:", err2)
						os.Exit(2)
					}
					fmt.Printf("E %d\n", ended.ID)
					id, err = j.Begin(ctx, Association{
						AgentID: agent, AgentUserID: agent,
						DeviceID: fmt.Sprintf("%sd%d", prefix, i%50), DeskUserID: fmt.Sprintf("%sdesk%d", prefix, i%50),
						Start: start,
					})
				}
				if err != nil {
					fmt.Fprintln(os.Stderr, "child:", err)
					os.Exit(2)
				}
				fmt.Printf("B %d %s\n", id, agent)
				if i%3 != 0 { // two of three log out at once, one stays until its desk is needed
					a, err := j.End(ctx, agent, start.Add(time.Second/2), EndLogout, "")
					if err != nil {
						fmt.Fprintln(os.Stderr, "child:", err)
						os.Exit(2)
					}
					fmt.Printf("E %d\n", a.ID)
				}
			}
		})
	}
	wg.Wait()
	os.Exit(3)
}
