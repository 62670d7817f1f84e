package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
)

const cstaUsageText = `Usage: connector csta [flags] ACTION ARGS...

A command-line CTI client: opens a CSTA application session, monitors the
device, sends one request, prints the answer ("ok" or the CSTA error as
class/value) and the events that follow, then closes the session.

Actions:
  login AGENT DEVICE                 log the agent on (SetAgentState loggedOn)
  logout AGENT DEVICE                log the agent off
  ready AGENT DEVICE                 set ready
  notready AGENT DEVICE [REASON]     set not ready, with a BroadWorks not-ready reason code
  acw AGENT DEVICE                   set after-call work (workingAfterCall)
  state DEVICE                       show the agent state (GetAgentState)
  forward DEVICE                     show forwarding (GetForwarding)
  forward DEVICE immediate|busy|noanswer on|off [DN] [--rings N]
                                     set forwarding
  dnd DEVICE                         show Do Not Disturb
  dnd DEVICE on|off                  set Do Not Disturb
  watch DEVICE...                    monitor the devices and print events until
                                     Ctrl-C / SIGTERM (or --for DURATION)

Flags (anywhere on the line):
`

const cstaUsageTail = `
Exit codes: 0 success, 1 the request failed (CSTA error or connection), 2 bad usage.
`

// cstaCommand is `connector csta`. SIGINT and SIGTERM end a watch (or an
// action's event window) cleanly: the session is stopped before exiting.
func cstaCommand(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return cstaRun(ctx, args, stdout, stderr)
}

type cstaOptions struct {
	addr, user, password, app string
	edition                   csta.Edition
	timeout, eventsFor, watch time.Duration
	rings                     int
	json                      bool
}

// cstaAction is one parsed action: the devices to monitor and the request.
type cstaAction struct {
	name    string
	devices []string
	do      func(ctx context.Context, c *cticlient.Client) (cstaResult, error)
}

// cstaResult is a successful answer: key=value pairs for the text line and
// the JSON object's extra members.
type cstaResult struct {
	pairs [][2]string
	json  map[string]any
}

func cstaRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("csta", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o cstaOptions
	var edition string
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8800", "CSTA `host:port` of the connector (csta.listen)")
	fs.StringVar(&o.user, "user", "", "user name for StartApplicationSession (csta.auth)")
	fs.StringVar(&o.password, "password", "", "password for StartApplicationSession")
	fs.StringVar(&o.app, "app", "connector-cli", "applicationID sent in StartApplicationSession")
	fs.StringVar(&edition, "edition", "ed3", "ECMA-323 edition: ed2..ed6 or none")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "deadline of the connection and of each request")
	fs.DurationVar(&o.eventsFor, "events-for", 2*time.Second, "how long to print events after the answer (0: none)")
	fs.DurationVar(&o.watch, "for", 0, "watch: stop after this long (0: until Ctrl-C / SIGTERM)")
	fs.IntVar(&o.rings, "rings", 0, "forward: ring count 1..100 (noanswer)")
	fs.BoolVar(&o.json, "json", false, "print one JSON object per line")
	fs.Usage = func() {
		fmt.Fprint(stderr, cstaUsageText)
		fs.PrintDefaults()
		fmt.Fprint(stderr, cstaUsageTail)
	}
	usage := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "connector csta: "+format+"\n\n", a...)
		fs.Usage()
		return exitUsage
	}

	// Flags may come after the positional arguments (forward ... --rings 3).
	var pos []string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return exitOK
			}
			return exitUsage // flag printed the problem and the usage
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		rest = rest[1:]
	}
	ed, ok := csta.ParseEdition(edition)
	if !ok {
		return usage("--edition %q: want ed2, ed3, ed4, ed5, ed6 or none", edition)
	}
	o.edition = ed
	if o.timeout <= 0 {
		return usage("--timeout must be positive")
	}
	if o.eventsFor < 0 || o.watch < 0 {
		return usage("--events-for and --for cannot be negative")
	}
	if len(pos) == 0 {
		return usage("no action given")
	}
	act, msg := cstaParseAction(pos, &o, func(name string) bool {
		set := false
		fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
		return set
	})
	if msg != "" {
		return usage("%s", msg)
	}
	return cstaExecute(ctx, act, o, &cstaPrinter{w: stdout, errw: stderr, json: o.json, action: act.name})
}

var cstaForwardTypes = map[string]csta.ForwardingType{
	"immediate": csta.ForwardImmediate,
	"busy":      csta.ForwardBusy,
	"noanswer":  csta.ForwardNoAns,
}

func cstaOnOff(s string) (bool, bool) {
	switch strings.ToLower(s) {
	case "on", "true":
		return true, true
	case "off", "false":
		return false, true
	}
	return false, false
}

// cstaParseAction checks the positional arguments; msg is the usage problem.
func cstaParseAction(pos []string, o *cstaOptions, flagSet func(string) bool) (act cstaAction, msg string) {
	name, args := pos[0], pos[1:]
	act.name = name
	if flagSet("rings") && name != "forward" {
		return act, "--rings only applies to forward"
	}
	if flagSet("for") && name != "watch" {
		return act, "--for only applies to watch (use --events-for)"
	}
	for _, a := range args {
		if a == "" {
			return act, name + ": empty argument"
		}
	}
	agentState := func(state csta.ReqAgentState) (cstaAction, string) {
		if len(args) != 2 {
			return act, fmt.Sprintf("%s takes AGENT DEVICE", name)
		}
		agent, device := args[0], args[1]
		act.devices = []string{device}
		act.do = func(ctx context.Context, c *cticlient.Client) (cstaResult, error) {
			pending, err := c.SetAgentState(ctx, device, state, agent, "")
			return cstaPending(pending), err
		}
		return act, ""
	}
	switch name {
	case "login":
		return agentState(csta.ReqLoggedOn)
	case "logout":
		return agentState(csta.ReqLoggedOff)
	case "ready":
		return agentState(csta.ReqReady)
	case "acw":
		return agentState(csta.ReqWorkingAfterCall)
	case "notready":
		if len(args) != 2 && len(args) != 3 {
			return act, "notready takes AGENT DEVICE [REASON]"
		}
		agent, device, reason := args[0], args[1], ""
		if len(args) == 3 {
			reason = args[2]
		}
		act.devices = []string{device}
		act.do = func(ctx context.Context, c *cticlient.Client) (cstaResult, error) {
			pending, err := c.SetAgentState(ctx, device, csta.ReqNotReady, agent, reason)
			return cstaPending(pending), err
		}
	case "state":
		if len(args) != 1 {
			return act, "state takes DEVICE"
		}
		device := args[0]
		act.devices = []string{device}
		act.do = func(ctx context.Context, c *cticlient.Client) (cstaResult, error) {
			st, err := c.GetAgentState(ctx, device)
			if err != nil {
				return cstaResult{}, err
			}
			return cstaAgentStateResult(st), nil
		}
	case "forward":
		switch {
		case len(args) == 1:
			if flagSet("rings") {
				return act, "--rings needs forward DEVICE TYPE on|off"
			}
			device := args[0]
			act.devices = []string{device}
			act.do = func(ctx context.Context, c *cticlient.Client) (cstaResult, error) {
				fw, err := c.GetForwarding(ctx, device)
				if err != nil {
					return cstaResult{}, err
				}
				return cstaForwardingResult(fw), nil
			}
		case len(args) == 3 || len(args) == 4:
			device := args[0]
			typ, ok := cstaForwardTypes[args[1]]
			if !ok {
				return act, fmt.Sprintf("forward: type %q: want immediate, busy or noanswer", args[1])
			}
			on, ok := cstaOnOff(args[2])
			if !ok {
				return act, fmt.Sprintf("forward: %q: want on or off", args[2])
			}
			dn := ""
			if len(args) == 4 {
				dn = args[3]
			}
			if flagSet("rings") && (o.rings < csta.MinRingCount || o.rings > csta.MaxRingCount) {
				return act, fmt.Sprintf("--rings %d: want %d..%d", o.rings, csta.MinRingCount, csta.MaxRingCount)
			}
			rings := o.rings
			act.devices = []string{device}
			act.do = func(ctx context.Context, c *cticlient.Client) (cstaResult, error) {
				return cstaResult{}, c.SetForwarding(ctx, device, typ, on, dn, rings)
			}
		default:
			return act, "forward takes DEVICE, or DEVICE immediate|busy|noanswer on|off [DN]"
		}
	case "dnd":
		switch len(args) {
		case 1:
			device := args[0]
			act.devices = []string{device}
			act.do = func(ctx context.Context, c *cticlient.Client) (cstaResult, error) {
				on, err := c.GetDoNotDisturb(ctx, device)
				return cstaResult{pairs: [][2]string{{"dnd", cstaOnOffText(on)}}, json: map[string]any{"dnd": on}}, err
			}
		case 2:
			device := args[0]
			on, ok := cstaOnOff(args[1])
			if !ok {
				return act, fmt.Sprintf("dnd: %q: want on or off", args[1])
			}
			act.devices = []string{device}
			act.do = func(ctx context.Context, c *cticlient.Client) (cstaResult, error) {
				return cstaResult{}, c.SetDoNotDisturb(ctx, device, on)
			}
		default:
			return act, "dnd takes DEVICE [on|off]"
		}
	case "watch":
		if len(args) == 0 {
			return act, "watch takes DEVICE..."
		}
		act.devices = args
	default:
		return act, fmt.Sprintf("unknown action %q", name)
	}
	return act, ""
}

func cstaOnOffText(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func cstaPending(pending string) cstaResult {
	if pending == "" {
		return cstaResult{}
	}
	return cstaResult{pairs: [][2]string{{"pending", pending}}, json: map[string]any{"pending": pending}}
}

func cstaAgentStateResult(st *csta.GetAgentStateResponse) cstaResult {
	var r cstaResult
	var agents []map[string]any
	for _, e := range st.AgentStateList {
		a := map[string]any{"agent": e.AgentID, "loggedOn": e.LoggedOnState}
		r.pairs = append(r.pairs, [2]string{"agent", e.AgentID}, [2]string{"loggedOn", strconv.FormatBool(e.LoggedOnState)})
		var items []map[string]any
		for _, it := range e.AgentInfo {
			item := map[string]any{}
			for _, kv := range [][2]string{{"group", string(it.ACDGroup)}, {"state", string(it.AgentState)}, {"pending", string(it.PendingAgentState)}} {
				if kv[1] != "" {
					r.pairs = append(r.pairs, kv)
					item[kv[0]] = kv[1]
				}
			}
			items = append(items, item)
		}
		if items != nil {
			a["info"] = items
		}
		agents = append(agents, a)
	}
	r.json = map[string]any{"agents": agents}
	if st.ReasonCode != "" {
		r.pairs = append(r.pairs, [2]string{"reason", st.ReasonCode})
		r.json["reason"] = st.ReasonCode
	}
	return r
}

func cstaForwardingResult(fw *csta.GetForwardingResponse) cstaResult {
	var r cstaResult
	var list []map[string]any
	for _, it := range fw.ForwardingList {
		v := cstaOnOffText(it.ForwardStatus)
		item := map[string]any{"type": string(it.ForwardingType), "on": it.ForwardStatus}
		if it.ForwardDN != "" {
			v += ":" + string(it.ForwardDN)
			item["dn"] = string(it.ForwardDN)
		}
		if it.RingCount > 0 {
			v += ":" + strconv.Itoa(it.RingCount) + "rings"
			item["rings"] = it.RingCount
		}
		r.pairs = append(r.pairs, [2]string{string(it.ForwardingType), v})
		list = append(list, item)
	}
	if list == nil {
		list = []map[string]any{}
	}
	r.json = map[string]any{"forwarding": list}
	return r
}

// cstaExecute opens the session, monitors, runs the request and prints.
func cstaExecute(ctx context.Context, act cstaAction, o cstaOptions, p *cstaPrinter) int {
	callCtx := func(parent context.Context) (context.Context, context.CancelFunc) {
		return context.WithTimeout(parent, o.timeout)
	}
	dctx, cancel := callCtx(ctx)
	c, err := cticlient.Dial(dctx, o.addr, cticlient.WithTimeout(o.timeout))
	cancel()
	if err != nil {
		p.answer(nil, err)
		return exitFailure
	}
	defer c.Close()

	sctx, cancel := callCtx(ctx)
	_, err = c.StartSession(sctx, o.app, o.user, o.password, o.edition)
	cancel()
	if err != nil {
		p.answer(nil, err)
		return exitFailure
	}
	// The session is stopped even after Ctrl-C, with a context of its own.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), o.timeout)
		defer cancel()
		if c.SessionID() != "" {
			if err := c.StopSession(cctx); err != nil {
				p.warn("stopping the session: %v", err)
			}
		}
	}()

	var monitored []string
	for _, d := range act.devices {
		mctx, cancel := callCtx(ctx)
		_, err := c.MonitorStart(mctx, d)
		cancel()
		if err == nil {
			monitored = append(monitored, d)
			continue
		}
		if act.do == nil { // watch: the monitors are the request
			p.answer(nil, fmt.Errorf("%s: %w", d, err))
			return exitFailure
		}
		p.warn("monitor %s: %v (events will not be shown)", d, err)
	}

	if act.do == nil {
		p.answer(&cstaResult{pairs: [][2]string{{"watching", strings.Join(monitored, ",")}},
			json: map[string]any{"watching": monitored}}, nil)
		return p.events(ctx, c, o.watch, true)
	}

	rctx, cancel := callCtx(ctx)
	res, err := act.do(rctx, c)
	cancel()
	p.answer(&res, err)
	if err != nil {
		return exitFailure
	}
	if o.eventsFor > 0 && len(monitored) > 0 {
		p.events(ctx, c, o.eventsFor, false)
	}
	return exitOK
}

// cstaPrinter writes answers and events as text lines or JSON objects.
type cstaPrinter struct {
	mu     sync.Mutex
	w      io.Writer
	errw   io.Writer
	json   bool
	action string
}

func (p *cstaPrinter) writeJSON(v map[string]any) {
	b, err := json.Marshal(v)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"type":"error","error":%q}`, err.Error()))
	}
	p.w.Write(append(b, '\n'))
}

// answer prints the request's outcome. A CSTA or session error is the
// answer itself ("operation/invalidDeviceID"); other errors (connection,
// timeout) go to stderr in text mode.
func (p *cstaPrinter) answer(res *cstaResult, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ce *cticlient.Error
	var se *cticlient.SessionError
	isAnswer := errors.As(err, &ce) || errors.As(err, &se)
	if p.json {
		obj := map[string]any{"type": "answer", "action": p.action, "ok": err == nil}
		if err != nil {
			obj["error"] = err.Error()
			if ce != nil {
				obj["class"], obj["value"] = ce.Class, ce.Value
			}
		} else if res != nil {
			for k, v := range res.json {
				obj[k] = v
			}
		}
		p.writeJSON(obj)
		return
	}
	if err != nil {
		if isAnswer {
			fmt.Fprintln(p.w, err.Error())
		} else {
			fmt.Fprintf(p.errw, "connector csta: %v\n", err)
		}
		return
	}
	line := "ok"
	if res != nil {
		for _, kv := range res.pairs {
			line += " " + kv[0] + "=" + kv[1]
		}
	}
	fmt.Fprintln(p.w, line)
}

func (p *cstaPrinter) event(ev cticlient.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.json {
		fmt.Fprintln(p.w, ev.String())
		return
	}
	obj := map[string]any{"type": "event", "name": ev.Name}
	for _, kv := range ev.Fields() {
		obj[kv[0]] = kv[1]
	}
	p.writeJSON(obj)
}

func (p *cstaPrinter) warn(format string, a ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.errw, "connector csta: "+format+"\n", a...)
}

// events prints events until d elapses (0: until ctx ends), ctx ends, the
// connection ends or the session is terminated. For a watch, losing the
// session or the connection is a failure (exit 1); otherwise the answer
// already decided the exit code.
func (p *cstaPrinter) events(ctx context.Context, c *cticlient.Client, d time.Duration, watch bool) int {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case <-timeout:
			return exitOK
		case ev, ok := <-c.Events():
			if !ok {
				if watch {
					p.warn("%v", c.Err())
					return exitFailure
				}
				return exitOK
			}
			p.event(ev)
			if ev.Name == "ApplicationSessionTerminated" {
				if watch {
					return exitFailure
				}
				return exitOK
			}
		}
	}
}
