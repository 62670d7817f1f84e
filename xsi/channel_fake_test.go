package xsi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// fakeXSP is a scripted Xsi-Events server for the channel manager tests:
// streaming channel add, heartbeat (echoed on the stream), channel
// refresh/delete, event responses, subscription add/list/refresh. Tests
// push documents onto a channel's stream and inject failures.
type fakeXSP struct {
	name string // backend name, recorded with each request

	mu        sync.Mutex
	nextID    int
	chans     map[string]*fakeChan
	order     []*fakeChan
	subs      map[string]*fakeSub
	acks      map[string]int
	ackOrder  []string
	hbStatus  int // answer heartbeats with this status when non-zero
	ackStatus int // answer event responses with this status when non-zero (after counting them)
	// onDelete, when set, are documents written on a channel's stream when
	// it is deleted, ahead of its ChannelTerminatedEvent (events that were
	// in flight).
	onDelete    []string
	addStatus   int  // answer channel adds with this status when non-zero
	silent      bool // do not echo heartbeats on the stream
	chanExpires int  // granted channel expiry (s)
	subExpires  int  // granted subscription expiry (s)
	channelAdds []time.Time
	addBodies   [][]byte
	chanPuts    int
	chanDeletes []string
	subPosts    []string // target|event
	subPuts     []string // subscription IDs
	subLists    int
	heartbeats  int
	noCookie    int // control requests without the channel's JSESSIONID
	requests    []string
	// hold, when set, keeps the requests it matches (method, path) from
	// being answered until holdGate is closed; held counts them.
	hold     func(method, path string) bool
	holdGate chan struct{}
	held     int
}

type fakeChan struct {
	id     string
	cookie string
	docs   chan []byte
	kill   chan struct{}
	once   sync.Once
	closed chan struct{} // handler returned
}

func (c *fakeChan) end() { c.once.Do(func() { close(c.kill) }) }

type fakeSub struct {
	id, target, event, channelSet string
}

func newFakeXSP(name string) *fakeXSP {
	return &fakeXSP{name: name, chans: map[string]*fakeChan{}, subs: map[string]*fakeSub{}, acks: map[string]int{}, chanExpires: 3600, subExpires: 3600}
}

func (f *fakeXSP) lock() func() { f.mu.Lock(); return f.mu.Unlock }

// channel returns the n-th channel opened (0-based), or nil.
func (f *fakeXSP) channel(n int) *fakeChan {
	defer f.lock()()
	if n < len(f.order) {
		return f.order[n]
	}
	return nil
}

func (f *fakeXSP) numChannels() int { defer f.lock()(); return len(f.order) }

func (f *fakeXSP) ackCount(id string) int { defer f.lock()(); return f.acks[id] }

func (f *fakeXSP) send(c *fakeChan, doc string) {
	select {
	case c.docs <- []byte(doc):
	case <-c.closed:
	}
}

const (
	evPrefix      = "/com.broadsoft.xsi-events/v2.0"
	evAsyncPrefix = "/com.broadsoft.async/com.broadsoft.xsi-events/v2.0"
)

func (f *fakeXSP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	if u, p, ok := r.BasicAuth(); !ok || u != "admin@example.com" || p != "secret" {
		http.Error(w, "", http.StatusUnauthorized)
		return
	}
	path := r.URL.Path
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+path)
	gate := f.holdGate
	if f.hold != nil && f.hold(r.Method, path) {
		f.held++
	} else {
		gate = nil
	}
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if r.Method == http.MethodPost && path == evAsyncPrefix+"/channel" {
		f.stream(w, r, body)
		return
	}
	if !strings.HasPrefix(path, evPrefix+"/") {
		http.NotFound(w, r)
		return
	}
	rest := strings.TrimPrefix(path, evPrefix+"/")
	f.mu.Lock()
	defer f.mu.Unlock()
	// Cookie affinity: a channel's control requests carry its JSESSIONID.
	checkCookie := func(c *fakeChan) {
		if ck, err := r.Cookie("JSESSIONID"); err != nil || ck.Value != c.cookie {
			f.noCookie++
		}
	}
	switch {
	case r.Method == http.MethodPost && rest == "channel/eventresponse":
		d := etree.NewDocument()
		if d.ReadFromBytes(body) != nil || d.Root() == nil {
			http.Error(w, "", 400)
			return
		}
		id := evText(d.Root(), "eventID")
		f.acks[id]++
		f.ackOrder = append(f.ackOrder, id)
		if f.ackStatus != 0 {
			http.Error(w, "", f.ackStatus)
			return
		}
	case strings.HasPrefix(rest, "channel/"):
		parts := strings.Split(strings.TrimPrefix(rest, "channel/"), "/")
		c := f.chans[parts[0]]
		if c == nil {
			http.Error(w, "", 404)
			return
		}
		checkCookie(c)
		switch {
		case len(parts) == 2 && parts[1] == "heartbeat" && r.Method == http.MethodPut:
			f.heartbeats++
			if f.hbStatus != 0 {
				http.Error(w, "", f.hbStatus)
				return
			}
			if !f.silent {
				go f.send(c, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<ChannelHeartBeat xmlns="http://schema.broadsoft.com/xsi"/>`)
			}
		case len(parts) == 1 && r.Method == http.MethodPut:
			f.chanPuts++
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Channel xmlns="%s"><channelId>%s</channelId><expires>%d</expires></Channel>`, NS, c.id, f.chanExpires)
		case len(parts) == 1 && r.Method == http.MethodDelete:
			f.chanDeletes = append(f.chanDeletes, c.id)
			delete(f.chans, c.id)
			inFlight := f.onDelete
			f.onDelete = nil
			go func() {
				for _, d := range inFlight {
					f.send(c, strings.ReplaceAll(d, "CHANNEL", c.id))
				}
				f.send(c, channelTerminatedDoc(c.id, "ExplicitDelete"))
				f.send(c, "") // then close the stream, after what was queued
			}()
		default:
			http.Error(w, "", 400)
		}
	case r.Method == http.MethodGet && rest == "subscription":
		f.subLists++
		var b strings.Builder
		b.WriteString(`<?xml version="1.0" encoding="UTF-8"?><SubscriptionList xmlns="` + NS + `">`)
		for _, s := range f.subs {
			fmt.Fprintf(&b, `<subscription><subscriptionId>%s</subscriptionId><subscriberId>admin@example.com</subscriberId><targetIdType>User</targetIdType><targetId>%s</targetId><event>%s</event><expires>%d</expires><channelSetId>%s</channelSetId><applicationId>connector</applicationId></subscription>`,
				s.id, s.target, s.event, f.subExpires, s.channelSet)
		}
		b.WriteString(`</SubscriptionList>`)
		io.WriteString(w, b.String())
	case r.Method == http.MethodPut && strings.HasPrefix(rest, "subscription/"):
		id := strings.TrimPrefix(rest, "subscription/")
		f.subPuts = append(f.subPuts, id)
		if f.subs[id] == nil {
			http.Error(w, "", 404)
			return
		}
		fmt.Fprintf(w, `<Subscription xmlns="%s"><subscriptionId>%s</subscriptionId><expires>%d</expires></Subscription>`, NS, id, f.subExpires)
	case r.Method == http.MethodPost && strings.HasPrefix(rest, "enterprise/"):
		// A scope's list subscription (eventPackageList).
		f.nextID++
		s := &fakeSub{id: fmt.Sprintf("sub-%d", f.nextID), target: rest, event: "list", channelSet: "connector-1"}
		f.subs[s.id] = s
		f.subPosts = append(f.subPosts, s.target+"|list")
		fmt.Fprintf(w, `<Subscription xmlns="%s"><subscriptionId>%s</subscriptionId><expires>%d</expires></Subscription>`, NS, s.id, f.subExpires)
	case r.Method == http.MethodPost && strings.HasPrefix(rest, "user/"):
		d := etree.NewDocument()
		if d.ReadFromBytes(body) != nil || d.Root() == nil {
			http.Error(w, "", 400)
			return
		}
		f.nextID++
		s := &fakeSub{id: fmt.Sprintf("sub-%d", f.nextID), target: strings.TrimPrefix(rest, "user/"), event: evText(d.Root(), "event"), channelSet: evText(d.Root(), "channelSetId")}
		f.subs[s.id] = s
		f.subPosts = append(f.subPosts, s.target+"|"+s.event)
		fmt.Fprintf(w, `<Subscription xmlns="%s"><subscriptionId>%s</subscriptionId><expires>%d</expires></Subscription>`, NS, s.id, f.subExpires)
	default:
		http.Error(w, "", 400)
	}
}

func (f *fakeXSP) stream(w http.ResponseWriter, r *http.Request, body []byte) {
	f.mu.Lock()
	f.channelAdds = append(f.channelAdds, time.Now())
	f.addBodies = append(f.addBodies, body)
	if f.addStatus != 0 {
		st := f.addStatus
		f.mu.Unlock()
		http.Error(w, "", st)
		return
	}
	f.nextID++
	c := &fakeChan{id: fmt.Sprintf("%s-ch-%d", f.name, f.nextID), docs: make(chan []byte, 1024), kill: make(chan struct{}), closed: make(chan struct{})}
	c.cookie = "sess-" + c.id
	f.chans[c.id] = c
	f.order = append(f.order, c)
	exp := f.chanExpires
	f.mu.Unlock()
	defer close(c.closed)
	http.SetCookie(w, &http.Cookie{Name: "JSESSIONID", Value: c.cookie, Path: "/com.broadsoft.xsi-events"})
	w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
	w.WriteHeader(200)
	fl := w.(http.Flusher)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+`<Channel xmlns="%s"><channelId>%s</channelId><expires>%d</expires></Channel>`, NS, c.id, exp)
	fl.Flush()
	for {
		select {
		case d := <-c.docs:
			if len(d) == 0 {
				return // a clean end (c.end drops the connection with whatever is still queued)
			}
			if _, err := w.Write(d); err != nil {
				return
			}
			fl.Flush()
		case <-c.kill:
			return
		case <-r.Context().Done():
			return
		}
	}
}

func channelTerminatedDoc(chID, reason string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<xsi:Event xmlns:xsi="http://schema.broadsoft.com/xsi" xmlns:xsi1="http://www.w3.org/2001/XMLSchema-instance" xsi1:type="xsi:ChannelTerminatedEvent"><xsi:channelId>` + chID + `</xsi:channelId><xsi:reason>` + reason + `</xsi:reason></xsi:Event>`
}

// eventDoc is a DoNotDisturbEvent (or the given data) for subscription sub.
func eventDoc(eventID string, seq int, sub, chID, data string) string {
	if data == "" {
		data = `<xsi:eventData xsi1:type="xsi:DoNotDisturbEvent"><xsi:info><xsi:active>true</xsi:active><xsi:ringSplash>false</xsi:ringSplash></xsi:info></xsi:eventData>`
	}
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<xsi:Event xmlns:xsi="http://schema.broadsoft.com/xsi" xmlns:xsi1="http://www.w3.org/2001/XMLSchema-instance" xsi1:type="xsi:SubscriptionEvent"><xsi:eventID>%s</xsi:eventID><xsi:sequenceNumber>%d</xsi:sequenceNumber><xsi:userId>admin@example.com</xsi:userId><xsi:externalApplicationId>connector</xsi:externalApplicationId><xsi:subscriptionId>%s</xsi:subscriptionId><xsi:channelId>%s</xsi:channelId><xsi:targetId>agent1@example.com</xsi:targetId>%s</xsi:Event>`,
		eventID, seq, sub, chID, data)
}

// pipeNet is an in-memory network for synctest bubbles: net.Pipe
// connections (durably blocking) to http.Servers by address. Each conn
// reports a TCP remote address so the channel's address pinning works.
type pipeNet struct {
	mu    sync.Mutex
	hosts map[string]*pipeListener // "10.0.0.1:80" → backend
	names map[string][]string      // "xsp.test:80" → backends, round-robin
	rr    int
	srvs  []*http.Server
	dials []string // backend of each dial
}

type pipeListener struct {
	addr  *net.TCPAddr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return l.addr }

type pipeConn struct {
	net.Conn
	remote net.Addr
}

func (c pipeConn) RemoteAddr() net.Addr { return c.remote }

func newPipeNet() *pipeNet {
	return &pipeNet{hosts: map[string]*pipeListener{}, names: map[string][]string{}}
}

// serve runs h on backend ip:80.
func (p *pipeNet) serve(ip string, h http.Handler) {
	l := &pipeListener{addr: &net.TCPAddr{IP: net.ParseIP(ip), Port: 80}, conns: make(chan net.Conn), done: make(chan struct{})}
	srv := &http.Server{Handler: h}
	p.mu.Lock()
	p.hosts[l.addr.String()] = l
	p.srvs = append(p.srvs, srv)
	p.mu.Unlock()
	go srv.Serve(l)
}

// alias makes name:80 resolve to the backends round-robin.
func (p *pipeNet) alias(name string, ips ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ip := range ips {
		p.names[name+":80"] = append(p.names[name+":80"], ip+":80")
	}
}

func (p *pipeNet) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	p.mu.Lock()
	if bs := p.names[addr]; len(bs) > 0 {
		addr = bs[p.rr%len(bs)]
		p.rr++
	}
	l := p.hosts[addr]
	p.dials = append(p.dials, addr)
	p.mu.Unlock()
	if l == nil {
		return nil, errors.New("pipenet: no route to " + addr)
	}
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return pipeConn{c, l.addr}, nil
	case <-l.done:
		return nil, errors.New("pipenet: connection refused")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stopBackend closes one backend (listener and connections).
func (p *pipeNet) closeAll() {
	p.mu.Lock()
	srvs := p.srvs
	p.mu.Unlock()
	for _, s := range srvs {
		s.Close()
	}
}

func testEventsConfig(servers ...string) Config {
	c := DefaultConfig()
	c.Servers = servers
	c.Username, c.Password = "admin@example.com", "secret"
	c.ChannelSetID, c.ApplicationID = "connector-1", "connector"
	c.HeartbeatInterval = 15 * time.Second
	c.RequestTimeout = 5 * time.Second
	c.ReconnectMin, c.ReconnectMax = time.Second, 30*time.Second
	c.Targets = []Target{{Kind: "user", ID: "agent1@example.com"}}
	c.EventPackages = []string{"Do Not Disturb"}
	return c
}

// collector drains Events() and remembers every event delivered.
type collector struct {
	mu      sync.Mutex
	evs     []*SubscriptionEvent
	seen    map[string]int
	resyncs []*ScopeResync
	done    chan struct{}
}

func collect(e *Events) *collector {
	c := &collector{seen: map[string]int{}, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for ev := range e.Events() {
			if r, ok := ev.(*ScopeResync); ok {
				c.mu.Lock()
				c.resyncs = append(c.resyncs, r)
				c.mu.Unlock()
				continue
			}
			se := ev.(*SubscriptionEvent)
			c.mu.Lock()
			c.evs = append(c.evs, se)
			c.seen[se.EventID]++
			c.mu.Unlock()
		}
	}()
	return c
}

func (c *collector) ids() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, len(c.evs))
	for i, e := range c.evs {
		out[i] = e.EventID
	}
	return out
}

// exactlyOnce fails unless every id was delivered exactly once and nothing
// else was delivered.
func (c *collector) exactlyOnce(t *testing.T, ids ...string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.evs) != len(ids) {
		t.Errorf("delivered %d events %v, want %d %v", len(c.evs), c.seen, len(ids), ids)
	}
	for _, id := range ids {
		if c.seen[id] != 1 {
			t.Errorf("event %s delivered %d times", id, c.seen[id])
		}
	}
}

// fakeStats is a consistent copy of a fakeXSP's counters.
type fakeStats struct {
	heartbeats, noCookie, chanPuts, subLists, channels int
	addBodies                                          []string
	chanDeletes, subPosts, subPuts, ackOrder, reqs     []string
}

func (f *fakeXSP) stats() fakeStats {
	defer f.lock()()
	s := fakeStats{heartbeats: f.heartbeats, noCookie: f.noCookie, chanPuts: f.chanPuts, subLists: f.subLists, channels: len(f.order)}
	for _, b := range f.addBodies {
		s.addBodies = append(s.addBodies, string(b))
	}
	s.chanDeletes = append(s.chanDeletes, f.chanDeletes...)
	s.subPosts = append(s.subPosts, f.subPosts...)
	s.subPuts = append(s.subPuts, f.subPuts...)
	s.ackOrder = append(s.ackOrder, f.ackOrder...)
	s.reqs = append(s.reqs, f.requests...)
	return s
}
