package failover

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/broadworks-connector/connector/csta"
	"github.com/broadworks-connector/connector/csta/cticlient"
	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// requestTimeout bounds one CTI request: far beyond the connector's own
// request timeout, so a request that times out here was never answered.
const requestTimeout = time.Minute

// CTIClient is a CTI client with a primary and a backup link (one
// instance's CSTA address each). When its connection drops, it dials the
// links in turn (the one that failed last) until one accepts.
type CTIClient struct {
	links    []string
	deadline time.Duration // how long a reconnect tries
	closed   atomic.Bool

	mu     sync.Mutex
	cur    *cticlient.Client
	curAt  int   // index in links of cur
	gaveUp error // a reconnect gave up: later ones fail at once
	all    []*cticlient.Client
}

// NewCTIClient connects to links[0] (or, failing that, the next).
func NewCTIClient(ctx context.Context, reconnectFor time.Duration, links ...string) (*CTIClient, error) {
	c := &CTIClient{links: links, deadline: reconnectFor, curAt: len(links) - 1}
	if _, _, err := c.reconnect(ctx, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// current is the live connection and its link.
func (c *CTIClient) current() (*cticlient.Client, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return nil, ""
	}
	return c.cur, c.links[c.curAt]
}

// reconnect replaces old by a connection to the next link that accepts,
// unless another caller already did. Once it gave up, it fails at once.
func (c *CTIClient) reconnect(ctx context.Context, old *cticlient.Client) (*cticlient.Client, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gaveUp != nil {
		return nil, "", c.gaveUp
	}
	if c.cur != old {
		return c.cur, c.links[c.curAt], nil
	}
	deadline := time.Now().Add(c.deadline)
	for {
		if c.closed.Load() {
			c.gaveUp = errors.New("failover: client closed")
			return nil, "", c.gaveUp
		}
		c.curAt = (c.curAt + 1) % len(c.links)
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		cl, err := cticlient.Dial(dctx, c.links[c.curAt], cticlient.WithTimeout(requestTimeout), cticlient.WithEventBuffer(64))
		cancel()
		if err == nil {
			c.cur = cl
			c.all = append(c.all, cl)
			return cl, c.links[c.curAt], nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			c.cur = nil
			c.gaveUp = fmt.Errorf("failover: no link accepts after %v: %w", c.deadline, err)
			return nil, "", c.gaveUp
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Close closes every connection the client had; a reconnect under way
// gives up.
func (c *CTIClient) Close() {
	c.closed.Store(true)
	c.mu.Lock()
	all := c.all
	c.all = nil
	c.mu.Unlock()
	for _, cl := range all {
		cl.Close()
	}
}

// Answer is how a request ended.
type Answer struct {
	OK       bool      // answered with success
	Err      error     // the CSTA error, or why nothing answered
	Link     string    // the link that answered
	At       time.Time // when the answer came
	Attempts int       // sends, the first included (more after a drop)
}

// Do sends call on the live connection; when the connection drops before
// an answer, it reconnects (the other link) and sends call again, until an
// answer comes or reconnecting gives up. Only a CSTA answer (success or
// error) counts as answered.
func (c *CTIClient) Do(ctx context.Context, call func(context.Context, *cticlient.Client) error) Answer {
	cl, link := c.current()
	var a Answer
	for {
		if cl == nil {
			var err error
			if cl, link, err = c.reconnect(ctx, nil); err != nil {
				a.Err = err
				return a
			}
		}
		a.Attempts++
		err := call(ctx, cl)
		var ce *cticlient.Error
		switch {
		case err == nil:
			a.OK, a.Link, a.At = true, link, time.Now()
			return a
		case errors.As(err, &ce):
			a.Err, a.Link, a.At = err, link, time.Now()
			return a
		}
		// No answer: the connection ended (or is ending: a write on a
		// connection just cut fails before the reader sees the end).
		select {
		case <-cl.Done():
		case <-time.After(5 * time.Second):
			a.Err = fmt.Errorf("failover: no answer on a live connection to %s: %w", link, err)
			return a
		}
		if ctx.Err() != nil {
			a.Err = errNoAnswer
			return a
		}
		var rerr error
		if cl, link, rerr = c.reconnect(ctx, cl); rerr != nil {
			a.Err = errors.Join(errNoAnswer, rerr)
			return a
		}
	}
}

// Ack is an acknowledged login: agent i told logged on at desk i.
type Ack struct {
	Agent int
	At    time.Time
	Link  string
}

// AgentRun is one agent driven by the storm, with what its answers
// promised.
type AgentRun struct {
	I       int
	Promise stack.Promise
	Acks    []Ack    // every login answered with success
	Ops     []string // the request log, for failure messages
	Failed  []string // requests that got no answer at all (reconnecting gave up)
}

// Storm drives agents 1..n at desks 1..n through clients: each agent logs
// in, then changes state (Ready, After Call Work, logout and login again)
// until the churn ends; every third agent logs out at the end.
type Storm struct {
	Agents  []*AgentRun
	names   *strings.Replacer // links → instance names, for failure messages
	clients []*CTIClient
	stop    atomic.Bool
	wg      sync.WaitGroup
	start   time.Time
}

// StartStorm starts n agents over clients (agent i on client i mod
// len(clients)); it returns at once.
func StartStorm(clients []*CTIClient, n int, churn time.Duration) *Storm {
	s := &Storm{clients: clients, start: time.Now()}
	end := s.start.Add(churn)
	for i := 1; i <= n; i++ {
		a := &AgentRun{I: i, Promise: stack.Promise{Login: stack.LoggedOut, ACD: xspsim.StateSignOut}} // as seeded
		s.Agents = append(s.Agents, a)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.drive(a, clients[i%len(clients)], end)
		}()
	}
	return s
}

// Name names links (CSTA addresses) in failure messages: pairs of
// address, name.
func (s *Storm) Name(addrName ...string) { s.names = strings.NewReplacer(addrName...) }

// Label names the links in s (see Name).
func (s *Storm) Label(str string) string {
	if s.names == nil {
		return str
	}
	return s.names.Replace(str)
}

// Started is when the storm began.
func (s *Storm) Started() time.Time { return s.start }

// Wait waits for every agent's last request.
func (s *Storm) Wait() { s.wg.Wait() }

// Stop ends the churn early (requests under way finish).
func (s *Storm) Stop() { s.stop.Store(true) }

func (s *Storm) drive(a *AgentRun, c *CTIClient, end time.Time) {
	rng := rand.New(rand.NewPCG(uint64(a.I), 18))
	s.set(a, c, csta.ReqLoggedOn)
	for time.Now().Before(end) && !s.stop.Load() {
		time.Sleep(time.Duration(20+rng.IntN(80)) * time.Millisecond)
		if a.Promise.Login != stack.LoggedIn {
			s.set(a, c, csta.ReqLoggedOn)
			continue
		}
		switch r := rng.Float64(); {
		case r < 0.35:
			s.set(a, c, csta.ReqReady)
		case r < 0.6:
			s.set(a, c, csta.ReqWorkingAfterCall)
		case r < 0.8:
			s.set(a, c, csta.ReqLoggedOff)
		default:
			s.set(a, c, csta.ReqLoggedOn)
		}
	}
	if a.I%3 == 0 {
		s.set(a, c, csta.ReqLoggedOff)
	}
}

// set sends one SetAgentState for agent a at its desk and keeps what the
// answer promised.
func (s *Storm) set(a *AgentRun, c *CTIClient, st csta.ReqAgentState) {
	ans := c.Do(context.Background(), func(ctx context.Context, cl *cticlient.Client) error {
		_, err := cl.SetAgentState(ctx, stack.DeskID(a.I), st, stack.AgentID(a.I), "")
		return err
	})
	if ans.Attempts > 1 {
		// An earlier send got no answer: whatever it did is judged by
		// the state, then this answer says more.
		a.Promise.Lost()
	}
	switch {
	case ans.OK:
		a.Promise.Answered(st, "")
		if st == csta.ReqLoggedOn {
			a.Acks = append(a.Acks, Ack{Agent: a.I, At: ans.At, Link: ans.Link})
		}
		a.Ops = append(a.Ops, fmt.Sprintf("%s:ok@%s×%d@%s", st, ans.Link, ans.Attempts, ans.At.Format("05.000")))
	case errors.As(ans.Err, new(*cticlient.Error)):
		a.Promise.Refused(st)
		a.Ops = append(a.Ops, fmt.Sprintf("%s:err@%s×%d@%s(%v)", st, ans.Link, ans.Attempts, ans.At.Format("05.000"), ans.Err))
	default:
		a.Promise.Lost()
		a.Failed = append(a.Failed, fmt.Sprintf("%s: %v", st, ans.Err))
		a.Ops = append(a.Ops, fmt.Sprintf("%s:none×%d", st, ans.Attempts))
	}
}

// Problems compares BroadWorks (the simulator) with every agent's promise
// (stack.AgentProblems); ownCFA is desk i's own forwarding as seeded
// (stack.Config.DeskCFA).
func (s *Storm) Problems(snaps map[string]xspsim.UserSnapshot, ownCFA func(i int) string) []string {
	var bad []string
	for _, a := range s.Agents {
		for _, p := range stack.AgentProblems(a.I, a.Promise, snaps, ownCFA(a.I)) {
			bad = append(bad, fmt.Sprintf("agent %d: %s (requests: %s)", a.I, p, lastN(a.Ops, 6)))
		}
	}
	return bad
}

// Users are the BroadWorks users of the storm's agents and desks.
func (s *Storm) Users() []string {
	var ids []string
	for _, a := range s.Agents {
		ids = append(ids, stack.AgentUser(a.I), stack.DeskUser(a.I))
	}
	return ids
}

func lastN(s []string, n int) string {
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return fmt.Sprint(s)
}
