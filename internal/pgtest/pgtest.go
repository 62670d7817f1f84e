// Package pgtest runs a throwaway PostgreSQL cluster for tests: initdb in a
// temporary folder, pg_ctl start on a free 127.0.0.1 port with its socket in
// that folder, trust authentication on loopback, fsync on (tests measure
// real commits), and pg_ctl stop -m immediate plus removal at the end.
//
// As root (initdb refuses root) the cluster runs as the unprivileged
// postgres user (runuser -u postgres), in a folder it owns. Missing binaries
// or a failed start fail the test when CI=true and skip it elsewhere, as
// package xmlcheck does for xmllint.
//
// One cluster per test package: start it in TestMain with Main, or lazily
// with Shared; each test takes a fresh database with NewDatabase.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is one running throwaway PostgreSQL cluster.
type Cluster struct {
	dir      string // the temporary folder (data, socket, log)
	data     string
	bin      string // folder of initdb, pg_ctl
	port     int
	asUser   string // "postgres" when run as root, "" otherwise
	dbUser   string // the cluster's superuser
	stopped  atomic.Bool
	dbs      atomic.Int64
	watchdog *exec.Cmd // stops the cluster if this process dies first
}

// Bin finds the folder holding initdb and pg_ctl: PATH first, then Debian's
// /usr/lib/postgresql/<version>/bin (newest version first).
func Bin() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if isExec(filepath.Join(d, "initdb")) && isExec(filepath.Join(d, "pg_ctl")) {
			return d, nil
		}
	}
	return "", errors.New("initdb and pg_ctl not found on PATH nor in /usr/lib/postgresql/*/bin (install Debian's postgresql)")
}

func version(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Start starts a cluster. The caller stops it with Stop.
func Start() (*Cluster, error) {
	bin, err := Bin()
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin}
	if os.Geteuid() == 0 {
		c.asUser = "postgres"
		if _, err := user.Lookup(c.asUser); err != nil {
			return nil, fmt.Errorf("pgtest: running as root needs the unprivileged %s user: %w", c.asUser, err)
		}
	}
	c.dbUser = c.asUser
	if c.dbUser == "" {
		u, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("pgtest: current user: %w", err)
		}
		c.dbUser = u.Username
	}
	if c.dir, err = os.MkdirTemp("", "pgtest-"); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if c.asUser != "" {
		if out, err := exec.Command("chown", c.asUser, c.dir).CombinedOutput(); err != nil {
			os.RemoveAll(c.dir)
			return nil, fmt.Errorf("pgtest: chown %s: %v: %s", c.dir, err, out)
		}
	}
	c.data = filepath.Join(c.dir, "data")
	if out, err := c.run("initdb", "-D", c.data, "--auth=trust", "--username="+c.dbUser, "--encoding=UTF8",
		"--locale=C", "--no-instructions").CombinedOutput(); err != nil {
		os.RemoveAll(c.dir)
		return nil, fmt.Errorf("pgtest: initdb: %v: %s", err, out)
	}
	// A free port can be taken between the probe and the start: retry.
	for attempt := 0; ; attempt++ {
		if c.port, err = freePort(); err != nil {
			os.RemoveAll(c.dir)
			return nil, fmt.Errorf("pgtest: %w", err)
		}
		out, err := c.pgStart()
		if err == nil {
			break
		}
		if attempt == 2 {
			logTail, _ := os.ReadFile(filepath.Join(c.dir, "log"))
			os.RemoveAll(c.dir)
			return nil, fmt.Errorf("pgtest: pg_ctl start: %v: %s\n%s", err, out, logTail)
		}
	}
	c.startWatchdog()
	return c, nil
}

// startWatchdog starts a shell that stops the cluster and removes its
// folder when this process is gone without calling Stop (a test binary
// killed by its timeout, a fatal error): no cluster outlives its tests.
// Stop ends it first. Without a shell the cluster runs unwatched.
func (c *Cluster) startWatchdog() {
	stop := shellQuote(filepath.Join(c.bin, "pg_ctl")) + " stop -m immediate -D " + shellQuote(c.data)
	if c.asUser != "" {
		stop = "runuser -u " + c.asUser + " -- " + stop
	}
	script := fmt.Sprintf("while kill -0 %d 2>/dev/null; do sleep 1; done; %s >/dev/null 2>&1; rm -rf %s",
		os.Getpid(), stop, shellQuote(c.dir))
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true} // not killed with the test's process group
	if cmd.Start() == nil {
		c.watchdog = cmd
		go cmd.Wait() //nolint:errcheck // reaped; its end is Stop's doing or this process's
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// pgStart starts the server on c.port.
func (c *Cluster) pgStart() ([]byte, error) {
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c shared_buffers=16MB -c max_connections=200", c.port, c.dir)
	return c.run("pg_ctl", "start", "-w", "-t", "30", "-D", c.data, "-l", filepath.Join(c.dir, "log"), "-o", opts).CombinedOutput()
}

// Restart starts the server again after Kill, on the same port with the
// same data (crash recovery replays its WAL): the database back.
func (c *Cluster) Restart() error {
	if out, err := c.pgStart(); err != nil {
		return fmt.Errorf("pgtest: pg_ctl start: %v: %s", err, out)
	}
	return nil
}

// run runs a PostgreSQL program as the cluster's owner.
func (c *Cluster) run(prog string, args ...string) *exec.Cmd {
	path := filepath.Join(c.bin, prog)
	if c.asUser == "" {
		return exec.Command(path, args...)
	}
	cmd := exec.Command("runuser", append([]string{"-u", c.asUser, "--", path}, args...)...)
	cmd.Dir = c.dir
	return cmd
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Port is the cluster's TCP port on 127.0.0.1.
func (c *Cluster) Port() int { return c.port }

// DSN is the connection string of database db on the cluster.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", c.dbUser, c.port, db)
}

// CreateDatabase creates a fresh, empty database and returns its DSN.
func (c *Cluster) CreateDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.dbs.Add(1))
	conn, err := pgx.Connect(ctx, c.DSN("postgres"))
	if err != nil {
		return "", fmt.Errorf("pgtest: connect: %w", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgtest: create database: %w", err)
	}
	return c.DSN(name), nil
}

// NewDatabase is CreateDatabase for a test: a failure fails the test.
func (c *Cluster) NewDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dsn, err := c.CreateDatabase(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return dsn
}

// Kill stops the server at once (pg_ctl stop -m immediate), as a crash
// would; the data stays until Stop. Tests of a dead server use it.
func (c *Cluster) Kill() error {
	if out, err := c.run("pg_ctl", "stop", "-m", "immediate", "-w", "-D", c.data).CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

// Freeze stops every process of the server (SIGSTOP): connections stay
// open and nothing answers, as a hung server or a network that drops
// packets. Thaw resumes them.
func (c *Cluster) Freeze() error { return c.signalAll(syscall.SIGSTOP) }

// Thaw resumes a frozen server (SIGCONT).
func (c *Cluster) Thaw() error { return c.signalAll(syscall.SIGCONT) }

// signalAll sends sig to the postmaster (data/postmaster.pid) and its
// children.
func (c *Cluster) signalAll(sig syscall.Signal) error {
	pidFile, err := os.ReadFile(filepath.Join(c.data, "postmaster.pid"))
	if err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	first, _, _ := strings.Cut(string(pidFile), "\n")
	master, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil {
		return fmt.Errorf("pgtest: postmaster.pid: %w", err)
	}
	pids := []int{master}
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		stat, err := os.ReadFile(p)
		if err != nil {
			continue // ended meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so after the last ')'.
		rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
		if f := strings.Fields(rest); len(f) > 1 && f[1] == strconv.Itoa(master) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("pgtest: signal %d: %w", pid, err)
		}
	}
	return nil
}

// Stop stops the server and removes its folder. Stopping again does nothing.
func (c *Cluster) Stop() error {
	if c.stopped.Swap(true) {
		return nil
	}
	if c.watchdog != nil {
		c.watchdog.Process.Kill() //nolint:errcheck // it may have ended
	}
	c.Thaw() //nolint:errcheck // a frozen server cannot stop; a stopped one has no pid file
	err := c.Kill()
	if strings.Contains(fmt.Sprint(err), "Is server running?") {
		err = nil // already killed
	}
	if rerr := os.RemoveAll(c.dir); rerr != nil && err == nil {
		err = fmt.Errorf("pgtest: %w", rerr)
	}
	return err
}

// Unavailable fails the test when CI=true and skips it elsewhere.
func Unavailable(tb testing.TB, err error) {
	tb.Helper()
	msg := fmt.Sprintf("pgtest: no PostgreSQL for this test: %v (install Debian's postgresql)", err)
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
}

// Own starts a cluster of the test's own (for tests that kill it), stopped
// and removed at the test's end.
func Own(tb testing.TB) *Cluster {
	tb.Helper()
	c, err := Start()
	if err != nil {
		Unavailable(tb, err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

var shared struct {
	mu  sync.Mutex
	c   *Cluster
	err error
	ran bool
}

// Shared is the test package's one cluster, started on first use; a package
// using it stops it with StopShared after m.Run (Main does both).
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.ran {
		shared.ran = true
		shared.c, shared.err = Start()
	}
	if shared.err != nil {
		Unavailable(tb, shared.err)
	}
	return shared.c
}

// StopShared stops the shared cluster if one was started.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.c == nil {
		return nil
	}
	err := shared.c.Stop()
	shared.c = nil
	return err
}

// Main runs a test package's tests, stops the shared cluster, then runs
// the after checks (goleak.Find, say) when the tests passed:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
func Main(m *testing.M, after ...func() error) {
	code := m.Run()
	if err := StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	for _, check := range after {
		if code != 0 {
			break
		}
		if err := check(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}
