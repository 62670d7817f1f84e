package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BuildConnector builds the connector command into dir and returns the
// binary's path (the go tool must be on PATH).
func BuildConnector(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "connector")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/broadworks-connector/connector/cmd/connector")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("bench: building the connector: %w\n%s", err, out)
	}
	return bin, nil
}

// logBuffer keeps the connector's log: its whole text up to a cap (the
// start-up lines the bench looks for come first) and always its tail.
type logBuffer struct {
	mu   sync.Mutex
	head bytes.Buffer
	tail []byte
}

const (
	logHeadCap = 1 << 20
	logTailCap = 16 << 10
)

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := logHeadCap - b.head.Len(); room > 0 {
		b.head.Write(p[:min(room, len(p))])
	}
	b.tail = append(b.tail, p...)
	if len(b.tail) > 2*logTailCap {
		b.tail = append(b.tail[:0], b.tail[len(b.tail)-logTailCap:]...)
	}
	return len(p), nil
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.head.String()
}

// Tail is the last n bytes written.
func (b *logBuffer) Tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := b.tail
	if len(t) > n {
		t = t[len(t)-n:]
	}
	return string(t)
}

// connector is a `connector run` child process.
type connector struct {
	cmd     *exec.Cmd
	log     *logBuffer
	exited  chan struct{}
	waitErr error
	token   string
	csta    string // CSTA TCP listen address
	admin   string // admin HTTP listen address
	sip     string // SIP listen address
	started time.Duration
	// needRecovery: started means the start-up recovery's "recovery done"
	// line was logged too.
	needRecovery bool
	pid          int
	http         *http.Client
	stopOnce     sync.Once
}

var (
	reSubs     = regexp.MustCompile(`msg="xsi: subscriptions".* active=(\d+) wanted=(\d+)`)
	reRunning  = regexp.MustCompile(`msg="connector running" csta=(127\.0\.0\.1:\d+) admin=(127\.0\.0\.1:\d+)`)
	reSIP      = regexp.MustCompile(`msg="SIP listening".* addr=(127\.0\.0\.1:\d+)`)
	reRecovery = regexp.MustCompile(`msg="reconciler: start-up recovery done"`)
)

// startConnector runs `bin run --config path` and waits until it listens
// and its start-up recovery is done (the XSI link is up and the users'
// snapshots are in), or timeout.
// Without recovery (the scope alone, no hoteling state: nothing to
// recover, so no such line) it waits for /readyz 200 instead.
func startConnector(bin, path, token, pin string, recovery bool, timeout time.Duration) (*connector, error) {
	c, t0, err := launchConnector(bin, path, token, pin)
	if err != nil {
		return nil, err
	}
	c.needRecovery = recovery
	if err := c.awaitStarted(t0, timeout); err != nil {
		return nil, err
	}
	if !recovery {
		if c.started, err = c.awaitReadyz(context.Background(), t0, timeout); err != nil {
			c.kill()
			return nil, err
		}
	}
	return c, nil
}

// launchConnector starts `bin run --config path` (under `taskset -c pin`
// when pin is set: taskset execs the connector, so the pid is the
// connector's) and returns at once with the time it was started.
func launchConnector(bin, path, token, pin string) (*connector, time.Time, error) {
	c := &connector{log: &logBuffer{}, exited: make(chan struct{}), token: token,
		http: &http.Client{Timeout: 30 * time.Second}}
	if pin != "" {
		ts, err := exec.LookPath("taskset")
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("bench: -pin needs taskset (util-linux): %w", err)
		}
		c.cmd = exec.Command(ts, "-c", pin, bin, "run", "--config", path)
	} else {
		c.cmd = exec.Command(bin, "run", "--config", path)
	}
	c.cmd.Stdout = c.log
	c.cmd.Stderr = c.log
	// The environment without CONNECTOR_* variables: the generated file
	// alone configures the connector.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CONNECTOR_") {
			c.cmd.Env = append(c.cmd.Env, kv)
		}
	}
	t0 := time.Now()
	if err := c.cmd.Start(); err != nil {
		return nil, t0, fmt.Errorf("bench: starting the connector: %w", err)
	}
	c.pid = c.cmd.Process.Pid
	go func() {
		c.waitErr = c.cmd.Wait()
		close(c.exited)
	}()
	return c, t0, nil
}

// awaitStarted waits until the connector started at t0 listens and its
// start-up recovery is done.
func (c *connector) awaitStarted(t0 time.Time, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		log := c.log.String()
		if (reRecovery.MatchString(log) || !c.needRecovery) && reRunning.MatchString(log) && reSIP.MatchString(log) {
			r := reRunning.FindStringSubmatch(log)
			c.csta, c.admin = r[1], r[2]
			c.sip = reSIP.FindStringSubmatch(log)[1]
			c.started = time.Since(t0)
			return nil
		}
		select {
		case <-c.exited:
			return fmt.Errorf("bench: the connector exited during start-up (%v); its log ends:\n%s", c.waitErr, c.log.Tail(4000))
		case <-deadline:
			c.kill()
			return fmt.Errorf("bench: the connector was not ready within %v (no \"connector running\", \"SIP listening\" and \"start-up recovery done\" lines); its log ends:\n%s", timeout, c.log.Tail(4000))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// awaitReadyz polls /readyz (every 10 ms, from the moment the log names
// the admin address) until it answers 200 — the CSTA and SIP listeners
// serving, an XSI event channel up and every xsi.scope subscription
// active — and returns the time since t0, when the connector was started.
func (c *connector) awaitReadyz(ctx context.Context, t0 time.Time, timeout time.Duration) (time.Duration, error) {
	deadline := t0.Add(timeout)
	last := ""
	for {
		if err := c.alive(); err != nil {
			return 0, err
		}
		if c.admin == "" {
			if r := reRunning.FindStringSubmatch(c.log.String()); r != nil {
				c.csta, c.admin = r[1], r[2]
			}
		}
		if c.admin != "" {
			ok, body, err := c.readyz(ctx)
			if ok {
				return time.Since(t0), nil
			}
			last = body
			if err != nil {
				last = err.Error()
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("bench: /readyz not 200 within %v (last answer %q); the connector's log ends:\n%s", timeout, last, c.log.Tail(3000))
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readyz asks /readyz once.
func (c *connector) readyz(ctx context.Context) (bool, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.admin+"/readyz", nil)
	if err != nil {
		return false, "", err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return false, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode == http.StatusOK, strings.TrimSpace(string(b)), nil
}

// awaitSettled waits until the connector has every XSI subscription it
// wants (its "xsi: subscriptions" log line) and has acknowledged every
// event the simulator sent (its initial events included), steadily for a
// second: only then does an idle connector stay idle.
func (c *connector) awaitSettled(ctx context.Context, stats func() (sent, acked int), timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var steadySince time.Time
	lastSent := -1
	for {
		if err := c.alive(); err != nil {
			return err
		}
		subsDone := false
		if m := reSubs.FindAllStringSubmatch(c.log.String(), -1); len(m) > 0 {
			last := m[len(m)-1]
			subsDone = last[1] == last[2]
		}
		sent, acked := stats()
		switch {
		case !subsDone || sent != acked || sent != lastSent:
			steadySince = time.Time{}
		case steadySince.IsZero():
			steadySince = time.Now()
		case time.Since(steadySince) >= time.Second:
			return nil
		}
		lastSent = sent
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the connector did not settle within %v (subscriptions all active: %v; simulator events sent %d, acknowledged %d); its log ends:\n%s",
				timeout, subsDone, sent, acked, c.log.Tail(3000))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// alive reports an error with the log's tail when the connector has exited.
func (c *connector) alive() error {
	select {
	case <-c.exited:
		return fmt.Errorf("bench: the connector exited early (%v); its log ends:\n%s", c.waitErr, c.log.Tail(4000))
	default:
		return nil
	}
}

// stop sends SIGTERM and waits for a clean exit (then SIGKILL).
func (c *connector) stop(timeout time.Duration) error {
	var err error
	c.stopOnce.Do(func() {
		select {
		case <-c.exited:
			err = fmt.Errorf("bench: the connector had already exited (%v); its log ends:\n%s", c.waitErr, c.log.Tail(4000))
			return
		default:
		}
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
			if c.waitErr != nil {
				err = fmt.Errorf("bench: the connector's shutdown: %v; its log ends:\n%s", c.waitErr, c.log.Tail(4000))
			}
		case <-time.After(timeout):
			c.kill()
			err = fmt.Errorf("bench: the connector did not stop within %v of SIGTERM; its log ends:\n%s", timeout, c.log.Tail(4000))
		}
	})
	return err
}

func (c *connector) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// procSample is what /proc says about the connector process.
type procSample struct {
	CPU        time.Duration // utime + stime, all threads
	RSS, HWM   uint64        // VmRSS, VmHWM in bytes
	Threads    int
	Goroutines int    // go_goroutines from /metrics (0 when not scraped)
	HeapInuse  uint64 // go_memstats_heap_inuse_bytes from /metrics
	At         time.Time
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times; 100 on every
// Linux the bench runs on.
const clockTick = 10 * time.Millisecond

// proc reads the connector's CPU time and memory from /proc.
func (c *connector) proc() (procSample, error) { return procOf(c.pid) }

// procOf reads a process's CPU time and memory from /proc.
func procOf(pid int) (procSample, error) {
	s := procSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, fmt.Errorf("bench: reading /proc/%d/stat: %w", pid, err)
	}
	// Fields after the command name in parentheses (which may hold spaces).
	i := bytes.LastIndexByte(stat, ')')
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 18 {
		return s, fmt.Errorf("bench: /proc/%d/stat has %d fields", pid, len(f))
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, _ := strconv.ParseInt(f[12], 10, 64) // field 15
	threads, _ := strconv.Atoi(f[17])           // field 20
	s.CPU = time.Duration(utime+stime) * clockTick
	s.Threads = threads
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			s.RSS = parseKB(v)
		} else if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			s.HWM = parseKB(v)
		}
	}
	return s, nil
}

func parseKB(v string) uint64 {
	n, _ := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
	return n << 10
}

// scrape reads the admin /metrics endpoint and calls line for each line
// of the exposition.
func (c *connector) scrape(ctx context.Context, line func(string)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.admin+"/metrics", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("bench: scraping /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("bench: /metrics answered %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line(sc.Text())
	}
	return sc.Err()
}

// metrics scrapes the admin /metrics endpoint and returns the value of
// every sample without labels.
func (c *connector) metrics(ctx context.Context) (map[string]float64, error) {
	out := map[string]float64{}
	err := c.scrape(ctx, func(line string) {
		if line == "" || line[0] == '#' || strings.ContainsRune(line, '{') {
			return
		}
		name, val, ok := strings.Cut(line, " ")
		if !ok {
			return
		}
		if v, err := strconv.ParseFloat(strings.TrimSpace(val), 64); err == nil {
			out[name] = v
		}
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// counts scrapes /metrics and sums the samples of metric name by the value
// of its label (e.g. connector_xsi_actions_requests_total by "method");
// label "" sums every sample under "".
func (c *connector) counts(ctx context.Context, name, label string) (map[string]float64, error) {
	out := map[string]float64{}
	key := label + `="`
	err := c.scrape(ctx, func(line string) {
		var labels, val string
		if rest, ok := strings.CutPrefix(line, name+"{"); ok {
			if labels, val, ok = strings.Cut(rest, "} "); !ok {
				return
			}
		} else if rest, ok := strings.CutPrefix(line, name+" "); ok {
			val = rest
		} else {
			return
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return
		}
		lv := ""
		if _, rest, ok := strings.Cut(labels, key); ok && label != "" {
			lv, _, _ = strings.Cut(rest, `"`)
		}
		out[lv] += v
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// sample is proc plus the goroutine count from /metrics.
func (c *connector) sample(ctx context.Context) (procSample, error) {
	if err := c.alive(); err != nil {
		return procSample{}, err
	}
	m, err := c.metrics(ctx)
	if err != nil {
		return procSample{}, errors.Join(err, c.alive())
	}
	s, err := c.proc()
	s.Goroutines = int(m["go_goroutines"])
	s.HeapInuse = uint64(m["go_memstats_heap_inuse_bytes"])
	return s, err
}

// awaitGauge polls /metrics until name reaches want.
func (c *connector) awaitGauge(ctx context.Context, name string, want float64, timeout time.Duration, abort <-chan error) error {
	deadline := time.Now().Add(timeout)
	var last float64
	for {
		if err := c.alive(); err != nil {
			return err
		}
		m, err := c.metrics(ctx)
		if err == nil {
			last = m[name]
			if last >= want {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: %s reached %v, not %v, within %v", name, last, want, timeout)
		}
		select {
		case err := <-abort:
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// machineCPU is the whole machine's busy and total CPU time so far
// (/proc/stat, all CPUs), to tell whether a phase had the CPUs to itself.
func machineCPU() (busy, total time.Duration) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0
	}
	var sum, idle int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest and guest_nice are already in user and nice
			break
		}
		sum += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return time.Duration(sum-idle) * clockTick, time.Duration(sum) * clockTick
}

// cpuMeter measures a phase's CPU: the connector's, this process's (the
// simulator, the CTI clients and the Go phones), sipp's, and the
// machine's.
type cpuMeter struct {
	conn, sipp           int // pids; sipp 0 when none
	c0, s0, self0, busy0 time.Duration
	total0               time.Duration
	t0                   time.Time
}

// PhaseCPU is what one phase cost, in CPU seconds, and the machine's use.
type PhaseCPU struct {
	Seconds   float64 `json:"seconds"`
	Connector float64 `json:"connector_cpu_s"`
	Bench     float64 `json:"bench_cpu_s"` // simulator, CTI clients, Go phones
	Sipp      float64 `json:"sipp_cpu_s"`
	// MachineBusy is the share of the machine's CPUs busy during the
	// phase, everything included (other users of the machine too).
	MachineBusy float64 `json:"machine_busy"`
}

func startMeter(conn, sipp int) *cpuMeter {
	m := &cpuMeter{conn: conn, sipp: sipp, t0: time.Now()}
	m.c0, m.s0, m.self0 = pidCPU(conn), pidCPU(sipp), selfCPU()
	m.busy0, m.total0 = machineCPU()
	return m
}

func (m *cpuMeter) stop() PhaseCPU {
	busy, total := machineCPU()
	p := PhaseCPU{Seconds: time.Since(m.t0).Seconds(), Connector: (pidCPU(m.conn) - m.c0).Seconds(),
		Bench: (selfCPU() - m.self0).Seconds(), Sipp: (pidCPU(m.sipp) - m.s0).Seconds()}
	if total > m.total0 {
		p.MachineBusy = float64(busy-m.busy0) / float64(total-m.total0)
	}
	return p
}

func pidCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	s, err := procOf(pid)
	if err != nil {
		return 0
	}
	return s.CPU
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
