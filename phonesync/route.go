package phonesync

import (
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Route sets (RFC 3261 §12.1.1, §12.1.2, §12.2.1.1). A proxy that wants to
// stay in a dialog's path (an SBC, Kamailio's record_route) puts itself in
// Record-Route; every later request of the dialog must then carry the
// route set as Route headers and go to its first entry, or the proxy
// refuses it (stock Kamailio: loose_route() fails, "404 Not here").

// maxRouteSet bounds the route set kept per dialog: a SUBSCRIBE can carry
// any number of Record-Route values, and each is held for the dialog's
// life (and written to the state file). Real paths have one to three
// proxies, two entries each when they change transport (double
// record-routing).
const maxRouteSet = 16

// routeSet reads a dialog's route set from the Record-Route headers of the
// request or response that set it up, in the order received: every header
// and every comma-separated value in each (sipgo splits those into one
// header per value, in order). A UAS keeps that order (§12.1.1); a UAC
// reverses it (§12.1.2). ok is false when there are more than maxRouteSet
// entries.
func routeSet(m interface{ GetHeaders(string) []sip.Header }, reverse bool) (routes []sip.Uri, ok bool) {
	for _, h := range m.GetHeaders("Record-Route") {
		rr, isRR := h.(*sip.RecordRouteHeader)
		if !isRR {
			continue
		}
		if len(routes) == maxRouteSet {
			return nil, false
		}
		routes = append(routes, *rr.Address.Clone())
	}
	if reverse {
		slices.Reverse(routes)
	}
	return routes, true
}

// looseRouter says whether a route URI names a loose router (RFC 3261
// §19.1.1: the lr parameter, RFC 2543 proxies lack it).
func looseRouter(u sip.Uri) bool {
	_, ok := uriParam(u, "lr")
	return ok
}

// uriParam is a URI parameter by name, ignoring case (RFC 3261 §19.1.4).
func uriParam(u sip.Uri, name string) (string, bool) {
	for _, kv := range u.UriParams {
		if strings.EqualFold(kv.K, name) {
			return kv.V, true
		}
	}
	return "", false
}

// routeRequest is where an in-dialog request goes (RFC 3261 §12.2.1.1):
// its Request-URI, its Route headers and the URI of its next hop. With no
// route set it is the remote target and nothing else. When the first route
// is a loose router the Request-URI is the remote target, the Route
// headers the whole route set, and the request goes to the first route.
// When it is a strict router (no lr), the Request-URI is the first route
// (without the parameters a Request-URI may not carry), the Route headers
// the rest of the route set and then the remote target, and the request
// goes to the Request-URI, which is again the first route.
func routeRequest(target sip.Uri, routes []sip.Uri) (ruri sip.Uri, route []sip.Uri, next sip.Uri) {
	if len(routes) == 0 {
		return target, nil, target
	}
	if looseRouter(routes[0]) {
		return target, routes, routes[0]
	}
	ruri = *routes[0].Clone()
	ruri.Headers = nil // §19.1.1: no headers, no method in a Request-URI
	if ruri.UriParams != nil {
		ruri.UriParams.Remove("method")
	}
	route = append(slices.Clone(routes[1:]), target)
	return ruri, route, routes[0]
}

// hopTransport is the transport to reach next over: the URI's transport
// parameter when it has one (RFC 3263 §4.1), TLS for a sips URI, else the
// transport the dialog's requests reach us over (a proxy that took the
// phone's SUBSCRIBE to us over TCP listens on TCP).
func hopTransport(next sip.Uri, dialogTransport string) string {
	if t, ok := uriParam(next, "transport"); ok {
		switch strings.ToUpper(t) {
		case "UDP", "TCP", "TLS":
			return strings.ToUpper(t)
		}
	}
	if next.IsEncrypted() {
		return "TLS"
	}
	return dialogTransport
}

// hopAddr is the host:port to send to for next: its maddr or host, and its
// port or the transport's default (RFC 3263 §4.2, as sipgo resolves
// Request-URIs); a host name is resolved by sipgo when sending.
func hopAddr(next sip.Uri, transport string) string {
	host := next.Host
	if maddr, ok := uriParam(next, "maddr"); ok && maddr != "" {
		host = maddr
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	port := next.Port
	if port == 0 {
		port = sip.DefaultPort(transport)
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}

// routeStrings and parseRoutes carry a route set through the state file.
func routeStrings(routes []sip.Uri) []string {
	if len(routes) == 0 {
		return nil
	}
	out := make([]string, len(routes))
	for i, r := range routes {
		out[i] = r.String()
	}
	return out
}

func parseRoutes(ss []string) ([]sip.Uri, bool) {
	if len(ss) > maxRouteSet {
		return nil, false
	}
	var routes []sip.Uri
	for _, s := range ss {
		var u sip.Uri
		if sip.ParseUri(s, &u) != nil || u.Host == "" {
			return nil, false
		}
		routes = append(routes, u)
	}
	return routes, true
}

// routeHeaderBytes is what a route set adds to each request: one
// "Route: <uri>\r\n" per entry (and, strict routing, the remote target,
// which the Request-URI then no longer holds).
func routeHeaderBytes(routes []sip.Uri) int {
	n := 0
	for _, r := range routes {
		n += len("Route: <>\r\n") + len(r.String())
	}
	return n
}
