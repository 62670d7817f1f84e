// Package phonesync keeps desk phones in sync over SIP, the connector being
// the notifier: BroadSoft's as-feature-event (DND, forwarding, agent state)
// and x-broadworks-hoteling (hot-desk guest login from the phone, with its
// nonce challenge) packages, on subscription dialogs of its own (sipgo has
// none for SUBSCRIBE), with digest authentication, per-source rate limits,
// ordered bounded NOTIFY queues, OPTIONS liveness, UDP dialogs persisted
// across restarts, and a watcher of a PBX's presence (RFC 3856).
//
// It speaks ECMA-323 bodies but knows nothing of BroadWorks: the gateway
// implements Service and hands every change to Server.Publish. It never
// imports xsi or csta (../shared/DESIGN.md); the protocol notes are in
// ../shared/research/sip.md.
package phonesync
