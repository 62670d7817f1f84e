// Package hoteling runs the hot-desk login and logout sequences on
// BroadWorks as step machines with compensation: each step is an Xsi-Actions
// change confirmed by the XSI event that reports it (the HTTP 200 alone is
// not the truth), under a per-step timeout, and a failed step undoes the
// completed ones in reverse. It knows nothing of CSTA or SIP
// (../shared/DESIGN.md); the gateway calls it and supplies the state view.
//
// Lock ordering: Sequencer.mu guards the lock table and the remembered host
// forwarding and is never held while waiting; the per-agent and per-host
// locks of one sequence are always taken in sorted key order, all before
// the first step.
package hoteling
