// Package phonesync will keep desk phones in sync over SIP (as-feature-event
// and x-broadworks-hoteling, the connector as notifier), follow PBX presence
// and report phones that drop off the network. Not built yet: issue 5. It
// must never import xsi (../shared/DESIGN.md).
package phonesync
