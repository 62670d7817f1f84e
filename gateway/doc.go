// Package gateway is the one place where CSTA meaning meets BroadWorks
// meaning (../shared/DESIGN.md): the directory (CSTA device and agent IDs ↔
// BroadWorks user IDs), the state view built from XSI events, the command
// semantics of the CSTA device services, and the fan-out of every change to
// CSTA monitors. It knows no wire format: it talks to csta through
// csta.Service and a Publisher, to BroadWorks through Actions and to the
// hot-desk sequences through Hoteling.
//
// Ordering. While a request for a user is in flight, the CSTA events
// derived for that user (from XSI events, or synthesised for CFB/CFNA which
// XSI does not report) are held in the user's outbox. They are released
// when the method has returned and the front end has queued its answer
// (csta.AfterAnswer): the events join the connection's write queue behind
// the answer, so the client reads the answer first, by construction. A
// request with no front end answer to wait for (a phone's, an operator's,
// an internal one) releases them when the method returns. Events of one
// user are always published in the order they were derived, under one
// publish lock.
package gateway
