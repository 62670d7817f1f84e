package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/beevik/etree"
	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/broadworks-connector/connector/internal/stack"
	"github.com/broadworks-connector/connector/phonesync"
	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// A phone is a desk phone subscribed to as-feature-event for its desk's
// DN over UDP (a sipgo user agent): it keeps the last forwarding and agent
// state its NOTIFYs told, which the harness compares with BroadWorks.

// phoneView is what a desk phone shows.
type phoneView struct {
	cfa           bool
	cfaTo         string
	state, reason string // agent state of the desk's guest ("loggedOff" without one)
}

type phone struct {
	dn   string
	life *stack.Connector // the connector life it subscribed with

	ua  *sipgo.UserAgent
	cli *sipgo.Client
	pc  net.PacketConn
	srv sync.WaitGroup

	mu       sync.Mutex
	closing  bool
	handlers sync.WaitGroup
	view     phoneView
	notifies int
	ended    bool // a NOTIFY said Subscription-State: terminated

	callID, fromTag, toTag string
	cseq                   uint32
	target                 sip.Uri
}

var phoneSeq struct {
	sync.Mutex
	n int
}

func token() string {
	phoneSeq.Lock()
	defer phoneSeq.Unlock()
	phoneSeq.n++
	return fmt.Sprintf("%x%d", time.Now().UnixNano(), phoneSeq.n)
}

// newPhone starts a phone for dn and subscribes it.
func (h *harness) newPhone(dn string) (*phone, error) {
	p := &phone{dn: dn}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("phone-"+dn), sipgo.WithUserAgentHostname("127.0.0.1"))
	if err != nil {
		return nil, err
	}
	quiet := slog.New(slog.DiscardHandler)
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		ua.Close()
		return nil, err
	}
	srv.OnNotify(p.track(p.onNotify))
	srv.OnOptions(p.track(func(req *sip.Request, tx sip.ServerTransaction) {
		tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}))
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		ua.Close()
		return nil, err
	}
	p.pc, p.ua = pc, ua
	local := pc.LocalAddr().String()
	p.srv.Go(func() { srv.ServeUDP(pc) })
	for range 200 { // until the listener is in the pool, so requests leave from it
		if c, err := ua.TransportLayer().GetConnection("udp", local); err == nil {
			c.Ref(-1)
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientLogger(quiet), sipgo.WithClientConnectionAddr(local), sipgo.WithClientAddr(local))
	if err != nil {
		p.close()
		return nil, err
	}
	p.cli = cli
	if err := p.subscribe(h.st, local); err != nil {
		p.close()
		return nil, err
	}
	return p, nil
}

func (p *phone) track(hd sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		p.mu.Lock()
		if p.closing {
			p.mu.Unlock()
			return // vanished: no answer
		}
		p.handlers.Add(1)
		p.mu.Unlock()
		defer p.handlers.Done()
		hd(req, tx)
	}
}

// subscribe opens a new subscription dialog (full state follows). A 503
// with Retry-After (the connector could not look the line up in time:
// XSI overloaded) is tried again after it, as a phone does, a few times.
func (p *phone) subscribe(st *stack.Stack, local string) error {
	p.mu.Lock()
	p.callID, p.fromTag, p.toTag, p.ended = "call-"+token(), "tag-"+token(), "", false
	p.life = st.Conn()
	p.mu.Unlock()
	for try := 1; ; try++ {
		res, err := p.trySubscribe(st, local)
		if err != nil {
			return err
		}
		retry, _ := strconv.Atoi(headerValue(res, "Retry-After"))
		if res.StatusCode == 503 && retry > 0 && try < 4 {
			time.Sleep(min(time.Duration(retry)*time.Second, 10*time.Second))
			continue
		}
		if res.StatusCode != 200 {
			return fmt.Errorf("phone %s: SUBSCRIBE answered %d %s (try %d)", p.dn, res.StatusCode, res.Reason, try)
		}
		p.mu.Lock()
		p.toTag, _ = res.To().Params.Get("tag")
		if c := res.Contact(); c != nil {
			p.target = c.Address
		}
		p.mu.Unlock()
		return nil
	}
}

func headerValue(res *sip.Response, name string) string {
	if h := res.GetHeader(name); h != nil {
		return strings.TrimSpace(h.Value())
	}
	return ""
}

// trySubscribe sends one SUBSCRIBE of the dialog-to-be and returns its
// final response.
func (p *phone) trySubscribe(st *stack.Stack, local string) (*sip.Response, error) {
	p.mu.Lock()
	p.cseq++
	p.mu.Unlock()
	server := st.SIPAddr()
	host, port, _ := sip.ParseAddr(server)
	req := sip.NewRequest(sip.SUBSCRIBE, sip.Uri{Scheme: "sip", User: p.dn, Host: host, Port: port})
	req.SetTransport("UDP")
	req.SetDestination(server)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: p.dn, Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", p.fromTag)
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: p.dn, Host: "127.0.0.1"}, Params: sip.NewParams()}
	callID := sip.CallIDHeader(p.callID)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: p.cseq, MethodName: sip.SUBSCRIBE})
	lh, lp, _ := sip.ParseAddr(local)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: p.dn, Host: lh, Port: lp}})
	req.AppendHeader(sip.NewHeader("Event", "as-feature-event"))
	req.AppendHeader(sip.NewHeader("Expires", "3600"))
	req.SetBody(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("phone %s: SUBSCRIBE: %w", p.dn, err)
	}
	return res, nil
}

func (p *phone) onNotify(req *sip.Request, tx sip.ServerTransaction) {
	// Applied before answering: phonesync sends a dialog's next NOTIFY only
	// once this one is answered, so they apply in order.
	p.mu.Lock()
	if cid := req.CallID(); cid == nil || string(*cid) == p.callID {
		for _, doc := range notifyDocs(req) {
			p.apply(doc)
		}
		p.notifies++
		if h := req.GetHeader("Subscription-State"); h != nil && strings.HasPrefix(strings.ToLower(h.Value()), "terminated") {
			p.ended = true
		}
	}
	p.mu.Unlock()
	tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// notifyDocs are the XML documents of a NOTIFY: its body, or each part of
// a multipart/mixed body.
func notifyDocs(req *sip.Request) [][]byte {
	body := req.Body()
	ct := ""
	if h := req.GetHeader("Content-Type"); h != nil {
		ct = h.Value()
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		if len(body) == 0 {
			return nil
		}
		return [][]byte{body}
	}
	var docs [][]byte
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if err != nil {
			return docs
		}
		b, _ := io.ReadAll(part)
		docs = append(docs, b)
	}
}

// apply records one as-feature-event document; p.mu held.
func (p *phone) apply(doc []byte) {
	d := etree.NewDocument()
	d.ReadSettings.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil } // ASCII
	if d.ReadFromBytes(doc) != nil || d.Root() == nil {
		return
	}
	root := d.Root()
	text := func(path string) string {
		if e := root.FindElement(path); e != nil {
			return strings.TrimSpace(e.Text())
		}
		return ""
	}
	switch root.Tag {
	case "ForwardingEvent":
		if text("forwardingType") == string(phonesync.ForwardImmediate) {
			p.view.cfa = text("forwardStatus") == "true"
			p.view.cfaTo = ""
			if p.view.cfa {
				p.view.cfaTo = strings.TrimPrefix(text("forwardTo"), "tel:")
			}
		}
	case "AgentLoggedOnEvent":
		p.view.state, p.view.reason = "loggedOn", ""
	case "AgentLoggedOffEvent":
		p.view.state, p.view.reason = "loggedOff", ""
	case "AgentReadyEvent":
		p.view.state, p.view.reason = "ready", ""
	case "AgentNotReadyEvent":
		p.view.state, p.view.reason = "notReady", text(".//AgentNotReadyReasonValue")
	case "AgentWorkingAfterCallEvent":
		p.view.state, p.view.reason = "workingAfterCall", ""
	}
}

// vanish makes the phone disappear: it answers nothing more and its socket
// is gone.
func (p *phone) vanish() {
	p.mu.Lock()
	p.closing = true
	p.mu.Unlock()
	p.handlers.Wait()
	p.pc.Close()
}

func (p *phone) close() {
	p.vanish()
	p.ua.Close()
	p.srv.Wait()
	closedPhones.Lock()
	closedPhones.uas = append(closedPhones.uas, p.ua)
	closedPhones.Unlock()
}

// closedPhones are the user agents of the phones closed since the last
// leak check. sipgo handles each request in a goroutine of its own, which
// looks up the connection to answer on: one still running when its phone
// closes (a NOTIFY the connector sent a moment before) finds the socket
// gone and opens a new one, with a reader, in a pool the closed agent has
// already cleared — a goroutine of the test's phone left for ever (found by
// the long campaign's leak check: four phones' readers in phones-vanishing).
// checkLeaks closes such late connections (sweepClosedPhones) before it
// counts; the connector's own goroutines are counted as they are.
var closedPhones struct {
	sync.Mutex
	uas []*sipgo.UserAgent
}

// sweepClosedPhones closes the connections closed phones opened late;
// forget also forgets the phones.
func sweepClosedPhones(forget bool) {
	closedPhones.Lock()
	defer closedPhones.Unlock()
	for _, ua := range closedPhones.uas {
		if pool := ua.TransportLayer().Pool("udp"); pool != nil {
			_ = pool.Clear()
		}
	}
	if forget {
		closedPhones.uas = nil
	}
}

// expectedPhone is what desk d's phone should show, from BroadWorks.
func expectedPhone(d int, snaps map[string]xspsim.UserSnapshot) phoneView {
	dk := snaps[stack.DeskUser(d)]
	v := phoneView{cfa: dk.CFAActive, state: "loggedOff"}
	if dk.CFAActive {
		v.cfaTo = strings.TrimPrefix(dk.CFANumber, "tel:")
	}
	if dk.HostGuestID != "" {
		av := agentViewOf(snaps[dk.HostGuestID])
		v.state, v.reason = av.state, av.reason
	}
	return v
}

// phoneDiff lists the phones whose last view differs from BroadWorks.
func (h *harness) phoneDiff(snaps map[string]xspsim.UserSnapshot) map[int][]string {
	h.pmu.Lock()
	defer h.pmu.Unlock()
	bad := map[int][]string{}
	for d, p := range h.phones {
		p.mu.Lock()
		got, n := p.view, p.notifies
		p.mu.Unlock()
		if want := expectedPhone(d, snaps); got != want {
			bad[d] = append(bad[d], fmt.Sprintf("phone %s: shows %+v after %d NOTIFYs, BroadWorks %+v", p.dn, got, n, want))
		}
	}
	return bad
}
