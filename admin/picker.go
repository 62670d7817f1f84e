package admin

import "time"

// FreeDesks is the hot-desk picker's rule: the desks an agent may log in at
// now. A desk is a Device with HotDesk set, and it is free when
//
//   - nobody holds it: it has no GuestAgentID (an association BroadWorks
//     still keeps, including a stale one from an agent who never logged out,
//     holds the desk) and no agent's Desk names it; and
//   - its phone is up: some registered phone (Expires zero or in the future)
//     has a DN equal to the desk's DeviceID and is InService.
//
// When no phone is registered at all (phone sync unused, or the connector
// just started) the second condition is dropped and every unheld desk is
// listed: without phones the connector cannot tell a live desk from a dead
// one, and hiding every desk would stop all logins.
func FreeDesks(devices []Device, phones []Phone, agents []Agent, now time.Time) []Device {
	held := make(map[string]bool)
	for _, agent := range agents {
		if agent.Desk != "" {
			held[agent.Desk] = true
		}
	}
	registered := false
	alive := make(map[string]bool)
	for _, phone := range phones {
		if !phone.Expires.IsZero() && !phone.Expires.After(now) {
			continue
		}
		registered = true
		if phone.InService {
			alive[phone.DN] = true
		}
	}
	free := []Device{}
	for _, device := range devices {
		if !device.HotDesk || device.GuestAgentID != "" || held[device.DeviceID] {
			continue
		}
		if registered && !alive[device.DeviceID] {
			continue
		}
		free = append(free, device)
	}
	return free
}
