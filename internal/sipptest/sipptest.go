// Package sipptest drives sipp (Debian sip-tester), a real third-party SIP
// peer, as a phone in tests: it builds phone-side scenarios for
// BroadSoft's as-feature-event package (../shared/research/sip.md §5) and
// runs them. A missing sipp fails the test when CI=true (the test command
// installs it) and skips it elsewhere, like internal/xmlcheck.
package sipptest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/broadworks-connector/connector/internal/testtool"
)

// Path is sipp's path.
func Path(t testing.TB) string {
	t.Helper()
	return testtool.Path(t, "sipp", "sip-tester")
}

// FreeUDPPort is a UDP port on 127.0.0.1 free at the time of asking.
func FreeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Phone is a phone-side scenario: one subscription dialog of one DN,
// authenticated with digest credentials, whose steps run in order.
type Phone struct {
	DN, User, Password string
	Event              string // default as-feature-event

	b     strings.Builder
	cseq  int
	label int
}

// NewPhone starts a scenario for a phone.
func NewPhone(dn, user, password string) *Phone {
	p := &Phone{DN: dn, User: user, Password: password, Event: "as-feature-event"}
	p.b.WriteString(`<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="phone ` + dn + `">
`)
	return p
}

func (p *Phone) nextCSeq() int { p.cseq++; return p.cseq }

// ok200 answers the request just received.
const ok200 = `  <send><![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
`

// Subscribe sends the initial SUBSCRIBE, answers the 401 challenge with
// the digest credentials and expects 200 (the dialog is then set up).
func (p *Phone) Subscribe() *Phone {
	for i, auth := range []string{"", "\n      [authentication username=" + p.User + " password=" + p.Password + "]"} {
		fmt.Fprintf(&p.b, `  <send retrans="500"><![CDATA[

      SUBSCRIBE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>
      Call-ID: [call_id]
      CSeq: %d SUBSCRIBE
      Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>%s
      Max-Forwards: 70
      Event: %s
      Accept: application/x-as-feature-event+xml
      Expires: 3600
      Content-Length: 0

    ]]></send>
`, p.nextCSeq(), auth, p.Event)
		if i == 0 {
			p.b.WriteString("  <recv response=\"401\" auth=\"true\"/>\n")
		}
	}
	p.b.WriteString("  <recv response=\"200\" rrs=\"true\"/>\n")
	return p
}

// request sends an in-dialog re-SUBSCRIBE carrying body (a CSTA request
// such as SetDoNotDisturb) and expects status. expires 0 unsubscribes. It
// carries the route set Subscribe's 200 recorded (rrs), so it passes a
// record-routing proxy (nothing when there is none).
func (p *Phone) request(body string, expires, status int) *Phone {
	ctype := ""
	if body != "" {
		ctype = "\n      Content-Type: application/x-as-feature-event+xml"
	}
	fmt.Fprintf(&p.b, `  <send retrans="500"><![CDATA[

      SUBSCRIBE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:[service]@[local_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]>[peer_tag_param]
      [routes]
      Call-ID: [call_id]
      CSeq: %d SUBSCRIBE
      Contact: <sip:[service]@[local_ip]:[local_port];transport=[transport]>
      [authentication username=%s password=%s]
      Max-Forwards: 70
      Event: %s
      Expires: %d%s
      Content-Length: [len]

%s
    ]]></send>
  <recv response="%d"/>
`, p.nextCSeq(), p.User, p.Password, p.Event, expires, ctype, indent(body), status)
	return p
}

// Request sends a CSTA request body on the subscription and expects 200.
func (p *Phone) Request(body string) *Phone { return p.request(body, 3600, 200) }

// RequestRefused sends a CSTA request body on the subscription and expects
// it refused with status (e.g. 403: not the phone's to change).
func (p *Phone) RequestRefused(body string, status int) *Phone { return p.request(body, 3600, status) }

// Unsubscribe ends the subscription (Expires: 0) and waits for the
// terminating NOTIFY.
func (p *Phone) Unsubscribe() *Phone {
	p.request("", 0, 200)
	return p.await("terminated", `search_in="hdr" header="Subscription-State:"`)
}

// AwaitNotify answers NOTIFYs until one whose body matches regexp (POSIX
// extended, as sipp's ereg) arrives: phones get NOTIFYs for every change,
// so the step looks for the one it is about.
func (p *Phone) AwaitNotify(regexp string) *Phone {
	return p.await(regexp, `search_in="body"`)
}

func (p *Phone) await(regexp, where string) *Phone {
	p.label++
	w, y, m := fmt.Sprintf("w%d", p.label), fmt.Sprintf("y%d", p.label), fmt.Sprintf("m%d", p.label)
	// The jumps ride on the recv and send themselves, not on separate nops:
	// sipp runs a call's next step on a later scheduler tick, and a NOTIFY
	// arriving while the call sits on a nop (the notifier sends the next
	// one as soon as our 200 is out) is "unexpected" and lost.
	fmt.Fprintf(&p.b, `  <label id="%s"/>
  <recv request="NOTIFY" test="%s" next="%s">
    <action><ereg regexp="%s" %s check_it="false" assign_to="%s"/></action>
  </recv>
%s  <label id="%s"/>
%s`, w, m, y, xmlAttr(regexp), where, m, strings.Replace(ok200, "<send>", `<send next="`+w+`">`, 1), y, ok200)
	return p
}

// Pause waits, e.g. to absorb retransmissions before the scenario ends.
func (p *Phone) Pause(ms int) *Phone {
	fmt.Fprintf(&p.b, "  <pause milliseconds=\"%d\"/>\n", ms)
	return p
}

// XML is the scenario document.
func (p *Phone) XML() string { return p.b.String() + "</scenario>\n" }

func indent(body string) string {
	if body == "" {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(body), "\n")
	for i, l := range lines {
		lines[i] = "      " + l
	}
	return strings.Join(lines, "\n")
}

func xmlAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;").Replace(s)
}

// Run runs the scenario once against remote (host:port) over UDP from
// 127.0.0.1:localPort, answering out-of-dialog OPTIONS (liveness pings)
// automatically, within ctx. On failure the error carries sipp's output
// and the message trace, kept in dir.
func (p *Phone) Run(ctx context.Context, t testing.TB, dir, remote string, localPort int) error {
	t.Helper()
	sipp := Path(t)
	name := "phone-" + p.DN
	file := filepath.Join(dir, name+".xml")
	if err := os.WriteFile(file, []byte(p.XML()), 0o600); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, sipp, remote, "-sf", file, "-s", p.DN,
		"-i", "127.0.0.1", "-p", fmt.Sprint(localPort), "-m", "1", "-aa",
		"-timeout", "120s", "-timeout_error", "-nostdin",
		"-trace_msg", "-message_file", filepath.Join(dir, name+"-messages.log"),
		"-trace_err", "-error_file", filepath.Join(dir, name+"-errors.log"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		msgs, _ := os.ReadFile(filepath.Join(dir, name+"-messages.log"))
		errs, _ := os.ReadFile(filepath.Join(dir, name+"-errors.log"))
		return fmt.Errorf("sipp %s: %v\n%s\n--- errors ---\n%s\n--- last messages ---\n%s", name, err, tail(string(out), 3000), tail(string(errs), 3000), tail(string(msgs), 6000))
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
