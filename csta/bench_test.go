package csta

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// setAgentState600 is a BroadWorks-style SetAgentState of 600 bytes: ISO-8859-1
// declaration, extensions in the middle, reason code private data.
var setAgentState600 = func() []byte {
	doc := `<?xml version="1.0" encoding="ISO-8859-1"?>
<SetAgentState xmlns="http://www.ecma-international.org/standards/ecma-323/csta/ed3">
<device>agent-desk-4711@example.com</device>
<requestedAgentState>notReady</requestedAgentState>
<extensions>
<privateData>
<private xmlns:pri="http://schema.broadsoft.com/CSTAPrivateData">
<pri:AgentNotReadyReasonValue>3</pri:AgentNotReadyReasonValue>
</private>
</privateData>
</extensions>
<agentID>agent-4711</agentID>
<password>31323334</password>
<group>sales-queue@example.com</group>
</SetAgentState>`
	for len(doc) < 600 {
		doc += " "
	}
	return []byte(doc)
}()

func BenchmarkDecodeSetAgentState600(b *testing.B) {
	if len(setAgentState600) != 600 {
		b.Fatalf("document is %d bytes", len(setAgentState600))
	}
	b.SetBytes(int64(len(setAgentState600)))
	b.ReportAllocs()
	for b.Loop() {
		d, err := Decode(setAgentState600, 32)
		if err != nil || d.Message.(SetAgentState).ReasonCode != "3" {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeGetAgentStateResponse(b *testing.B) {
	msg := GetAgentStateResponse{AgentStateList: []AgentStateEntry{{AgentID: "agent-4711", LoggedOnState: true,
		AgentInfo: []AgentInfoItem{{ACDGroup: "sales", AgentState: AgentNotReady}}}}, ReasonCode: "3"}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendEncode(buf[:0], msg, Edition3); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeAgentNotReadyEvent(b *testing.B) {
	ev := Event{Kind: EventAgentNotReady, Device: "4711", AgentID: "agent-4711", ReasonCode: "3"}
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = AppendEvent(buf[:0], &ev, "17", Edition6); err != nil {
			b.Fatal(err)
		}
	}
}

// noopService answers every request at once: the benchmark measures the
// front end alone.
type noopService struct{}

func (noopService) MonitorStart(context.Context, Requester, *MonitorStart) error { return nil }
func (noopService) SetAgentState(context.Context, Requester, *SetAgentState) (*SetAgentStateResponse, error) {
	return &SetAgentStateResponse{}, nil
}
func (noopService) GetAgentState(context.Context, Requester, *GetAgentState) (*GetAgentStateResponse, error) {
	return &GetAgentStateResponse{}, nil
}
func (noopService) SetForwarding(context.Context, Requester, *SetForwarding) error { return nil }
func (noopService) GetForwarding(context.Context, Requester, *GetForwarding) (*GetForwardingResponse, error) {
	return &GetForwardingResponse{}, nil
}
func (noopService) SetDoNotDisturb(context.Context, Requester, *SetDoNotDisturb) error { return nil }
func (noopService) GetDoNotDisturb(context.Context, Requester, *GetDoNotDisturb) (*GetDoNotDisturbResponse, error) {
	return &GetDoNotDisturbResponse{}, nil
}

// BenchmarkRoundTripPipelined sends SetAgentState requests over one loopback
// TCP connection with up to `window` outstanding, and reads every answer.
// req/s is the figure BENCHMARKS.md records; run with -cpu 1 for per-core.
func BenchmarkRoundTripPipelined(b *testing.B) {
	for _, window := range []int{1, 64} {
		b.Run(fmt.Sprintf("window=%d", window), func(b *testing.B) {
			cfg := testConfig()
			cfg.MaxOutstandingRequests = window
			s := startServer(b, cfg, noopService{})
			nc, err := net.Dial("tcp", s.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer nc.Close()
			frames := make([][]byte, 10000)
			for i := range frames {
				frames[i], _ = AppendFrame(nil, i, setAgentState600)
			}
			fr := NewFrameReader(nc, MaxFrameSize)
			credits := make(chan struct{}, window)
			for range window {
				credits <- struct{}{}
			}
			errc := make(chan error, 1)
			n := b.N
			b.ResetTimer()
			go func() {
				for i := 0; i < n; i++ {
					<-credits
					if _, err := nc.Write(frames[i%len(frames)]); err != nil {
						errc <- err
						return
					}
				}
				errc <- nil
			}()
			for i := 0; i < n; i++ {
				f, err := fr.ReadFrame()
				if err != nil {
					b.Fatal(err)
				}
				if f.XML[len(f.XML)-3] == 'e' && len(f.XML) < 40 {
					b.Fatalf("unexpected answer %s", f.XML)
				}
				credits <- struct{}{}
			}
			b.StopTimer()
			if err := <-errc; err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "req/s")
		})
	}
}

// benchServerEnv makes the test binary a bare front-end server with the
// no-op service (see BenchmarkRoundTripServerProcess).
const benchServerEnv = "CSTA_BENCH_SERVER"

func runBenchServer() int {
	cfg := DefaultConfig()
	cfg.Listen = "127.0.0.1:0"
	cfg.MaxOutstandingRequests = 4096
	s := NewServer(cfg, noopService{}, nil)
	if err := s.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("ADDR %s\n", s.Addr())
	io.Copy(io.Discard, os.Stdin) // the parent closes stdin to stop us
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s.Shutdown(ctx)
	return 0
}

// processCPU is the user+system CPU time a process has used so far.
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the line, in clock ticks (USER_HZ = 100 on Linux).
	fields := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond, nil
}

// BenchmarkRoundTripServerProcess runs the front end in its own process,
// pipelines SetAgentState requests at it over loopback TCP (window 64), and
// reports req/s and requests per CPU-second of the server process, with the
// client's cost excluded. With procs=1 the server has one core (GOMAXPROCS=1)
// and req/s is its per-core throughput.
func BenchmarkRoundTripServerProcess(b *testing.B) {
	for _, procs := range []int{1, 2} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) { benchServerProcess(b, procs) })
	}
}

func benchServerProcess(b *testing.B, procs int) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"=1", fmt.Sprintf("GOMAXPROCS=%d", procs))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "ADDR ") {
		b.Fatalf("server process said %q: %v", line, err)
	}
	nc, err := net.Dial("tcp", strings.TrimSpace(strings.TrimPrefix(line, "ADDR ")))
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()

	const window = 64
	frame, _ := AppendFrame(nil, 1, setAgentState600)
	credits := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
	}
	fr := NewFrameReader(nc, MaxFrameSize)
	cpuBefore, err := processCPU(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	n := b.N
	b.ResetTimer()
	errc := make(chan error, 1)
	go func() {
		w := bufio.NewWriterSize(nc, 64<<10)
		for i := 0; i < n; i++ {
			select {
			case <-credits:
			default: // nothing more may be sent yet: push out what is buffered
				if err := w.Flush(); err != nil {
					errc <- err
					return
				}
				<-credits
			}
			w.Write(frame)
		}
		errc <- w.Flush()
	}()
	for i := 0; i < n; i++ {
		f, err := fr.ReadFrame()
		if err != nil {
			b.Fatal(err)
		}
		if !bytes.Contains(f.XML, []byte("SetAgentStateResponse")) {
			b.Fatalf("unexpected answer %s", f.XML)
		}
		credits <- struct{}{}
	}
	b.StopTimer()
	if err := <-errc; err != nil {
		b.Fatal(err)
	}
	cpuAfter, _ := processCPU(cmd.Process.Pid)
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "req/s")
	if cpu := cpuAfter - cpuBefore; cpu > 0 {
		b.ReportMetric(float64(n)/cpu.Seconds(), "req/cpu-s")
		b.ReportMetric(float64(cpu.Microseconds())/float64(n), "server-cpu-µs/req")
	}
}
