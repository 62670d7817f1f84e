package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"syscall"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// A load process is the load side of a benchmark in its own OS process:
// the XSP simulator and the CTI clients. With it, the benchmark's process
// holds the connector alone, so its CPU time (ProcessCPU) is the
// connector's, not shared with the simulator it talks to and the clients
// that drive it. The parent talks to it over the child's stdin and stdout,
// one JSON line per request and per answer (LoadRequest, LoadResponse);
// ServeLoad is the child's side, run by the loadproc command.

// LoadRequest is one request to a load process.
type LoadRequest struct {
	// Op: "start" (seed and start the simulator), "latency", "snapshots",
	// "dial" (connect CTI clients), "storm" (agent states through them),
	// "stop".
	Op string `json:"op"`

	// start
	Users       []xspsim.User     `json:"users,omitempty"`
	Username    string            `json:"username,omitempty"`
	Password    string            `json:"password,omitempty"`
	QueueSize   int               `json:"queueSize,omitempty"`
	BacklogSize int               `json:"backlogSize,omitempty"`
	CFA         map[string]string `json:"cfa,omitempty"` // user → own CFA number, set through the portal before anything connects
	// latency
	Latency xspsim.Latency `json:"latency"`
	// snapshots
	IDs []string `json:"ids,omitempty"`
	// dial
	Addr    string `json:"addr,omitempty"`
	Clients int    `json:"clients,omitempty"`
	// storm: client i sets agent Agents[i] LoggedOn (LoggedOff when Logout)
	// at device Devices[i], all at once, or (Pace > 0) client i at Pace × i
	// after the start.
	Logout  bool          `json:"logout,omitempty"`
	Pace    time.Duration `json:"pace,omitempty"`
	Agents  []string      `json:"agents,omitempty"`
	Devices []string      `json:"devices,omitempty"`
}

// LoadResponse answers a LoadRequest.
type LoadResponse struct {
	Err       string                         `json:"err,omitempty"`
	URL       string                         `json:"url,omitempty"`
	Snapshots map[string]xspsim.UserSnapshot `json:"snapshots,omitempty"`
	Storm     *StormResult                   `json:"storm,omitempty"`
}

// StormResult is what one storm measured in the load process.
type StormResult struct {
	Took []time.Duration // per request, from its start to its answer
	Errs []string        // per request, "" for success
	Wall time.Duration   // from the common start to the last answer
	CPU  time.Duration   // the load process's CPU (user+system) during the storm
}

// ProcessCPU is this process's user+system CPU time so far.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BuildLoadProcess builds the load-process command into dir and returns its
// path (the go tool must be on PATH, as for go test).
func BuildLoadProcess(dir string) (string, error) {
	bin := filepath.Join(dir, "loadproc")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/broadworks-connector/connector/internal/stack/loadproc").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("stack: building the load process: %w\n%s", err, out)
	}
	return bin, nil
}

// LoadProcess is a running load process.
type LoadProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	url    string
	mu     sync.Mutex // one request at a time
	exited chan struct{}
}

func startLoadProcess(bin string, start LoadRequest) (*LoadProcess, error) {
	cmd := exec.Command(bin)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stack: load process: %w", err)
	}
	p := &LoadProcess{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 1<<20), exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(p.exited)
	}()
	start.Op = "start"
	resp, err := p.call(start)
	if err != nil {
		p.kill()
		return nil, err
	}
	p.url = resp.URL
	return p, nil
}

func (p *LoadProcess) call(req LoadRequest) (LoadResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	line, err := json.Marshal(req)
	if err != nil {
		return LoadResponse{}, err
	}
	if _, err := p.stdin.Write(append(line, '\n')); err != nil {
		return LoadResponse{}, fmt.Errorf("stack: load process %s: %w", req.Op, err)
	}
	answer, err := p.out.ReadBytes('\n')
	if err != nil {
		return LoadResponse{}, fmt.Errorf("stack: load process %s: %w", req.Op, err)
	}
	var resp LoadResponse
	if err := json.Unmarshal(answer, &resp); err != nil {
		return LoadResponse{}, fmt.Errorf("stack: load process %s: %w", req.Op, err)
	}
	if resp.Err != "" {
		return resp, fmt.Errorf("stack: load process %s: %s", req.Op, resp.Err)
	}
	return resp, nil
}

// URL is the simulator's base URL.
func (p *LoadProcess) URL() string { return p.url }

// SetActionsLatency sets the simulator's Actions latency.
func (p *LoadProcess) SetActionsLatency(l xspsim.Latency) error {
	_, err := p.call(LoadRequest{Op: "latency", Latency: l})
	return err
}

// Snapshots reads the simulator's state of users.
func (p *LoadProcess) Snapshots(ids []string) (map[string]xspsim.UserSnapshot, error) {
	resp, err := p.call(LoadRequest{Op: "snapshots", IDs: ids})
	return resp.Snapshots, err
}

// Dial connects n CTI clients (numbered 0..n-1 for Storm) to addr.
func (p *LoadProcess) Dial(addr string, n int) error {
	_, err := p.call(LoadRequest{Op: "dial", Addr: addr, Clients: n})
	return err
}

// Storm makes client i set agents[i] LoggedOn (LoggedOff when logout) at
// devices[i], all at once (pace 0) or client i at pace × i after the
// start, and returns what the load process measured.
func (p *LoadProcess) Storm(logout bool, agents, devices []string, pace time.Duration) (StormResult, error) {
	resp, err := p.call(LoadRequest{Op: "storm", Logout: logout, Agents: agents, Devices: devices, Pace: pace})
	if err != nil {
		return StormResult{}, err
	}
	if resp.Storm == nil {
		return StormResult{}, errors.New("stack: load process storm: no result")
	}
	return *resp.Storm, nil
}

// Shutdown stops the load process (simulator and clients) and waits for it.
func (p *LoadProcess) Shutdown(ctx context.Context) error {
	_, err := p.call(LoadRequest{Op: "stop"})
	p.stdin.Close()
	select {
	case <-p.exited:
	case <-ctx.Done():
		p.kill()
		return errors.Join(err, ctx.Err())
	}
	return err
}

func (p *LoadProcess) kill() {
	p.stdin.Close()
	p.cmd.Process.Kill()
	<-p.exited
}

// ServeLoad is the load process: it answers LoadRequests read from r on w
// until "stop" or the end of r, then stops the simulator and the clients.
func ServeLoad(r io.Reader, w io.Writer) error {
	l := &loadServer{}
	defer l.close()
	in := bufio.NewReaderSize(r, 1<<20)
	out := bufio.NewWriter(w)
	for {
		line, err := in.ReadBytes('\n')
		if errors.Is(err, io.EOF) && len(line) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		var req LoadRequest
		var resp LoadResponse
		if err := json.Unmarshal(line, &req); err != nil {
			resp.Err = err.Error()
		} else if err := l.serve(req, &resp); err != nil {
			resp.Err = err.Error()
		}
		b, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		out.Write(append(b, '\n'))
		if err := out.Flush(); err != nil {
			return err
		}
		if req.Op == "stop" {
			return nil
		}
	}
}

type loadServer struct {
	sim     *xspsim.Server
	clients []*cticlient.Client
}

func (l *loadServer) serve(req LoadRequest, resp *LoadResponse) error {
	switch req.Op {
	case "start":
		if l.sim != nil {
			return errors.New("already started")
		}
		l.sim = xspsim.New(xspsim.Config{Users: req.Users, Username: req.Username, Password: req.Password,
			QueueSize: req.QueueSize, BacklogSize: req.BacklogSize},
			slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).With("component", "xspsim"))
		if err := l.sim.Start(); err != nil {
			return err
		}
		for id, n := range req.CFA {
			if err := l.sim.PortalSetCFA(id, true, n); err != nil {
				return err
			}
		}
		resp.URL = l.sim.URL()
	case "latency":
		if l.sim == nil {
			return errors.New("not started")
		}
		l.sim.SetActionsLatency(req.Latency)
	case "snapshots":
		if l.sim == nil {
			return errors.New("not started")
		}
		resp.Snapshots = make(map[string]xspsim.UserSnapshot, len(req.IDs))
		for _, id := range req.IDs {
			s, err := l.sim.Snapshot(id)
			if err != nil {
				return err
			}
			resp.Snapshots[id] = s
		}
	case "dial":
		for range req.Clients {
			c, err := cticlient.Dial(context.Background(), req.Addr, cticlient.WithTimeout(120*time.Second), cticlient.WithEventBuffer(1024))
			if err != nil {
				return err
			}
			l.clients = append(l.clients, c)
		}
	case "storm":
		if len(req.Agents) != len(req.Devices) || len(req.Agents) > len(l.clients) {
			return fmt.Errorf("storm of %d agents at %d devices with %d clients", len(req.Agents), len(req.Devices), len(l.clients))
		}
		resp.Storm = l.storm(req)
	case "stop":
	default:
		return fmt.Errorf("unknown op %q", req.Op)
	}
	return nil
}

func (l *loadServer) storm(req LoadRequest) *StormResult {
	n := len(req.Agents)
	res := &StormResult{Took: make([]time.Duration, n), Errs: make([]string, n)}
	state := csta.ReqLoggedOn
	if req.Logout {
		state = csta.ReqLoggedOff
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	var t0 time.Time
	for i := range n {
		wg.Go(func() {
			<-start
			if req.Pace > 0 {
				time.Sleep(time.Until(t0.Add(time.Duration(i) * req.Pace)))
			}
			t1 := time.Now()
			if _, err := l.clients[i].SetAgentState(context.Background(), req.Devices[i], state, req.Agents[i], ""); err != nil {
				res.Errs[i] = err.Error()
			}
			res.Took[i] = time.Since(t1)
		})
	}
	if stop := profileLoad(); stop != nil {
		defer stop()
	}
	cpu0 := ProcessCPU()
	t0 = time.Now()
	close(start)
	wg.Wait()
	res.Wall = time.Since(t0)
	res.CPU = ProcessCPU() - cpu0
	return res
}

// profileLoad writes a CPU profile of the load process during each storm
// to $LOGINSTORM_LOAD_PROFILE.<pid>.<storm> when that is set.
func profileLoad() (stop func()) {
	base := os.Getenv("LOGINSTORM_LOAD_PROFILE")
	if base == "" {
		return nil
	}
	loadStorms++
	f, err := os.Create(fmt.Sprintf("%s.%d.%d", base, os.Getpid(), loadStorms))
	if err != nil {
		return nil
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}

var loadStorms int

func (l *loadServer) close() {
	for _, c := range l.clients {
		c.Close()
	}
	if l.sim != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.sim.Shutdown(ctx)
	}
}

// simPeer is what the stack needs of the simulator, in this process
// (*xspsim.Server) or in a load process.
type simPeer interface {
	URL() string
	SetActionsLatency(l xspsim.Latency) error
	Snapshots(ids []string) (map[string]xspsim.UserSnapshot, error)
	Shutdown(ctx context.Context) error
}

// inProcess is the simulator in this process.
type inProcess struct{ *xspsim.Server }

func (p inProcess) SetActionsLatency(l xspsim.Latency) error {
	p.Server.SetActionsLatency(l)
	return nil
}

func (p inProcess) Snapshots(ids []string) (map[string]xspsim.UserSnapshot, error) {
	out := make(map[string]xspsim.UserSnapshot, len(ids))
	for _, id := range ids {
		s, err := p.Snapshot(id)
		if err != nil {
			return nil, err
		}
		out[id] = s
	}
	return out, nil
}

// SetActionsLatency sets the simulator's Actions latency, wherever it runs.
func (s *Stack) SetActionsLatency(l xspsim.Latency) error { return s.peer.SetActionsLatency(l) }

// Load is the load process (simulator and CTI clients) when
// Config.LoadProcess is set, else nil.
func (s *Stack) Load() *LoadProcess {
	p, _ := s.peer.(*LoadProcess)
	return p
}

func (s *Stack) snapshot(id string) (xspsim.UserSnapshot, error) {
	m, err := s.peer.Snapshots([]string{id})
	if err != nil {
		return xspsim.UserSnapshot{}, err
	}
	return m[id], nil
}

// startSimulator seeds and starts the simulator with users and the desks'
// own CFA, in this process or (cfg.LoadProcess) in a load process.
func (s *Stack) startSimulator(users []xspsim.User, cfa map[string]string) error {
	queue := 4 * len(users)
	if s.cfg.LoadProcess != "" {
		p, err := startLoadProcess(s.cfg.LoadProcess, LoadRequest{Users: users, Username: simUser, Password: simPass,
			QueueSize: queue, BacklogSize: queue, CFA: cfa})
		if err != nil {
			return err
		}
		s.peer = p
		return nil
	}
	scfg := xspsim.Config{Users: users, Username: simUser, Password: simPass, QueueSize: queue, BacklogSize: queue}
	if s.cfg.SimConfig != nil {
		s.cfg.SimConfig(&scfg)
	}
	s.Sim = xspsim.New(scfg, s.cfg.Logger.With("component", "xspsim"))
	s.peer = inProcess{s.Sim}
	if err := s.Sim.Start(); err != nil {
		return err
	}
	for range s.cfg.XSPs - 1 {
		if _, err := s.Sim.AddXSP(); err != nil {
			return err
		}
	}
	for id, n := range cfa {
		if err := s.Sim.PortalSetCFA(id, true, n); err != nil {
			return err
		}
	}
	return nil
}
