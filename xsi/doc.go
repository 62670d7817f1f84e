// Package xsi is the connector's BroadWorks link: the Xsi-Actions client
// (typed service reads and changes) and the Xsi-Events channel set (one
// streaming channel per XSP, subscriptions, heartbeats, acknowledgements).
// Wire facts and sources: ../shared/research/xsi.md. It must never import
// csta or phonesync (../shared/DESIGN.md); the gateway translates.
package xsi
