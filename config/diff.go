package config

import (
	"reflect"
	"slices"
	"strings"
)

// restartKeys cannot change in a running process: the listeners are bound
// (and the WebSocket mounted) once at startup. log.format is here because the
// log handler is built once; log.level changes live. Every key under
// restartSections needs a restart too: the XSI link (its channels and
// subscriptions), the simulator, the hot-desk sequencer, the journal, the
// store and the lease (ha.*) are built once, and so is the phonesync
// server, which takes only new limits while it runs (liveKeys; its listeners, TLS, state file and PBX presence
// subscriptions could not change live anyway, credentials and lifetimes
// could, once it can). directory.* and gateway.* apply live
// (gateway.Reload).
var restartKeys = []string{
	"log.format",
	"csta.listen",
	"csta.tls.cert_file",
	"csta.tls.key_file",
	"csta.websocket.enabled",
	"admin.listen",
	"admin.tls.cert_file",
	"admin.tls.key_file",
	"admin.token",
	"admin.token_file",
}

var restartSections = []string{"xsi.", "simulator.", "hoteling.", "sip.", "journal.", "store.", "ha."}

// liveKeys apply live although their section takes a restart: the phone
// sync server's limits (phonesync.Server.Reload), and the simulator's users
// (new users are added to the running simulator; removed ones and role
// changes of existing ones wait for a restart, which the reload logs).
var liveKeys = []string{
	"simulator.users",
	"simulator.hoteling_hosts",
	"simulator.call_center_agents",
	"simulator.signed_in_agents",
	"sip.limits.max_subscriptions",
	"sip.limits.max_subscriptions_per_line",
	"sip.limits.subscribe_rate",
	"sip.limits.subscribe_burst",
	"sip.limits.max_body_bytes",
	"sip.limits.tcp_max_connections",
	"sip.limits.tcp_max_connections_per_source",
	"sip.limits.tcp_idle_timeout",
}

// NeedsRestart reports whether a change of key takes a restart.
func NeedsRestart(key string) bool {
	if slices.Contains(liveKeys, key) {
		return false
	}
	return slices.Contains(restartKeys, key) ||
		slices.ContainsFunc(restartSections, func(section string) bool { return strings.HasPrefix(key, section) })
}

// Diff lists the key paths whose values differ between old and new, in key
// order. Secrets are compared too, but only their key is listed.
func Diff(old, new *Config) (changed []string) {
	oldFields, newFields := leaves(old), leaves(new)
	for i, f := range oldFields {
		if !reflect.DeepEqual(f.value.Interface(), newFields[i].value.Interface()) {
			changed = append(changed, f.key)
		}
	}
	return changed
}

// ReloadPlan is what a reload does, in the manner of NATS server's reload.go:
// apply every change that can be applied live and refuse the others by name.
type ReloadPlan struct {
	Changed []string // every key that differs, in key order
	Refused []string // the changed keys that need a restart
	Apply   *Config  // next, with the refused keys kept at their running values
}

// PlanReload compares the running configuration with the next one.
func PlanReload(running, next *Config) ReloadPlan {
	plan := ReloadPlan{Changed: Diff(running, next)}
	apply := *next
	applyFields, runningFields := leaves(&apply), leaves(running)
	for i, f := range applyFields {
		if slices.Contains(plan.Changed, f.key) && NeedsRestart(f.key) {
			plan.Refused = append(plan.Refused, f.key)
			f.value.Set(runningFields[i].value)
		}
	}
	plan.Apply = &apply
	return plan
}
