package csta

import "testing"

func TestSmoke(t *testing.T) {
	s := startServer(t, testConfig(), newFakeService("4711"))
	c := dial(t, s)
	name, root := c.request(1, `<StartApplicationSession xmlns="http://www.ecma-international.org/standards/ecma-354/appl_session"><applicationInfo><applicationID>x</applicationID></applicationInfo><requestedProtocolVersions><protocolVersion>http://www.ecma-international.org/standards/ecma-323/csta/ed4</protocolVersion></requestedProtocolVersions><requestedSessionDuration>300</requestedSessionDuration></StartApplicationSession>`)
	t.Log(name, root.FindElement("actualProtocolVersion").Text())
	name, root = c.request(2, `<SetAgentState><device>4711</device><requestedAgentState>ready</requestedAgentState></SetAgentState>`)
	t.Log(name, errorOf(root))
	name, root = c.request(3, `<Foo/>`)
	t.Log(name, errorOf(root))
	name, root = c.request(4, `<<<`)
	t.Log(name, errorOf(root))
}
