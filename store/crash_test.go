package store

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCrashUnitsAtomic: a child process (this test binary, re-run with
// STORE_CHILD=1) runs logins as units of work — journal record, remembered
// desk forwarding and intent in one Update — from several goroutines and
// prints each agent as soon as its Update returns (when the gateway would
// answer). The parent SIGKILLs it after some lines, reopens the file and
// finds every acknowledged login whole, and every login in the file whole
// or absent: never a journal record without its forwarding or the reverse.
func TestCrashUnitsAtomic(t *testing.T) {
	if os.Getenv("STORE_CHILD") == "1" {
		crashChild()
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "connector.db")
	for round, kill := range []struct{ afterLines, writers int }{{1, 1}, {57, 1}, {3, 4}, {301, 4}, {777, 8}} {
		acked := runChild(t, path, round, kill.afterLines, kill.writers)
		s, err := Open(path, Options{LockTimeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("round %d: reopen after SIGKILL: %v", round, err)
		}
		snap := take(t, s)
		in := func(list []string, v string) bool {
			for _, x := range list {
				if x == v {
					return true
				}
			}
			return false
		}
		prefix := fmt.Sprintf("r%d-", round)
		whole := 0
		for _, a := range snap.open {
			if !strings.HasPrefix(a, prefix) {
				continue
			}
			agent := strings.TrimSuffix(a, "@example.com")
			desk := "d" + agent
			if !in(snap.remembered, desk+"@example.com") || !in(snap.intents, a+"/association="+desk) {
				t.Fatalf("round %d: %s has a journal record without its forwarding or intent", round, agent)
			}
			whole++
		}
		for _, h := range snap.remembered {
			if strings.HasPrefix(h, "d"+prefix) && !in(snap.open, strings.TrimPrefix(h, "d")) {
				t.Fatalf("round %d: forwarding of %s without its journal record", round, h)
			}
		}
		for _, agent := range acked {
			if !in(snap.open, agent+"@example.com") {
				t.Fatalf("round %d: acknowledged login of %s lost", round, agent)
			}
		}
		// At most one unacknowledged login per writer was committed.
		if whole < len(acked) || whole > len(acked)+kill.writers {
			t.Fatalf("round %d: %d logins in the file, %d acknowledged", round, whole, len(acked))
		}
		t.Logf("round %d: %d writers killed after %d lines; %d acknowledged logins whole, %d in the file", round, kill.writers, kill.afterLines, len(acked), whole)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func runChild(t *testing.T, path string, round, killAfter, writers int) []string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashUnitsAtomic$", "-test.count=1")
	cmd.Env = append(os.Environ(), "STORE_CHILD=1", "STORE_PATH="+path, "STORE_ROUND="+strconv.Itoa(round), "STORE_WRITERS="+strconv.Itoa(writers))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var acked []string
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked = append(acked, line)
			if len(acked) == killAfter {
				cmd.Process.Kill()
				break
			}
		}
	}
	// Lines printed before the kill landed are acknowledged too.
	for sc.Scan() {
		if line, ok := strings.CutPrefix(sc.Text(), "ack "); ok {
			acked = append(acked, line)
		}
	}
	cmd.Wait()
	if len(acked) < killAfter {
		t.Fatalf("round %d: child printed %d lines, wanted %d", round, len(acked), killAfter)
	}
	return acked
}

func crashChild() {
	round, _ := strconv.Atoi(os.Getenv("STORE_ROUND"))
	writers, _ := strconv.Atoi(os.Getenv("STORE_WRITERS"))
	s, err := Open(os.Getenv("STORE_PATH"), Options{LockTimeout: 5 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var out sync.Mutex
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := 0; ; i++ {
				agent := fmt.Sprintf("r%d-w%d-%d", round, w, i)
				desk := "d" + agent
				err := s.Update(bgCtx, func(tx Tx) error {
					if err := tx.PutIntent(agent+"@example.com", "association", []byte(desk)); err != nil {
						return err
					}
					if err := tx.PutRemembered(rem(desk+"@example.com", agent+"@example.com")); err != nil {
						return err
					}
					_, err := tx.JournalBegin(assoc(agent, desk, t0))
					return err
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				out.Lock()
				fmt.Println("ack " + agent)
				out.Unlock()
			}
		})
	}
	wg.Wait()
}
