package config

import (
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/broadworks-connector/connector/csta"
)

// The CTI users of the CSTA listeners (csta.auth.users,
// csta.websocket.auth.users) and the devices each may name
// (csta.authorization.devices). All of them apply live on SIGHUP
// (csta.Server.Reload).

// usersFromFrontEnd writes the front end's users as csta.auth.users items,
// sorted; no users is an empty list, what "users: []" in a file loads to.
func usersFromFrontEnd(users map[string]string) []string {
	out := []string{}
	for _, name := range slices.Sorted(maps.Keys(users)) {
		out = append(out, name+"="+users[name])
	}
	return out
}

// usersToFrontEnd expects validated items (invalid ones are left out).
func usersToFrontEnd(items []string) map[string]string {
	var users map[string]string
	for _, item := range items {
		if name, password, err := parseSecretPair(item); err == nil {
			if users == nil {
				users = make(map[string]string, len(items))
			}
			users[name] = password
		}
	}
	return users
}

func deviceLimitsFromFrontEnd(limits map[string][]csta.DeviceID) []string {
	out := []string{}
	for _, user := range slices.Sorted(maps.Keys(limits)) {
		devices := make([]string, len(limits[user]))
		for i, d := range limits[user] {
			devices[i] = string(d)
		}
		out = append(out, user+"="+strings.Join(devices, " "))
	}
	return out
}

// deviceLimitsToFrontEnd expects validated items (invalid ones are left out).
func deviceLimitsToFrontEnd(items []string) map[string][]csta.DeviceID {
	var limits map[string][]csta.DeviceID
	for _, item := range items {
		user, devices, err := parseDeviceLimit(item)
		if err != nil {
			continue
		}
		if limits == nil {
			limits = make(map[string][]csta.DeviceID, len(items))
		}
		for _, d := range devices {
			limits[user] = append(limits[user], csta.DeviceID(d))
		}
	}
	return limits
}

var errDeviceLimit = errors.New(`must be "user=device device …" with a user name without blanks, quotes or commas and at least one device`)

// parseDeviceLimit reads "user=dev1 dev2 desk1". Devices are separated by
// blanks; a comma is refused rather than guessed at, since the environment
// form of the list already splits items on commas.
func parseDeviceLimit(item string) (user string, devices []string, err error) {
	user, list, ok := strings.Cut(item, "=")
	if !ok || user == "" || strings.ContainsAny(user, " \t\r\n\",") {
		return "", nil, errDeviceLimit
	}
	if strings.Contains(list, ",") {
		return "", nil, errors.New("devices are separated by blanks, not commas")
	}
	devices = strings.Fields(list)
	if len(devices) == 0 {
		return "", nil, errDeviceLimit
	}
	return user, devices, nil
}

// validateUsers checks <section>.users and returns the listener's user
// names (username included), nil when a problem makes them unknown.
func validateUsers(ps *problems, section string, a Auth) []string {
	key := section + ".users"
	names := secretPairNames(ps, key, a.Users, "user")
	if ps.has(key) {
		return nil
	}
	if dup := firstDuplicate(names); dup != "" {
		ps.add(key, "user %q is listed twice", dup)
		return nil
	}
	if a.Username != "" {
		if slices.Contains(names, a.Username) {
			ps.add(key, "user %q is also %s.username; list it once", a.Username, section)
			return nil
		}
		names = append(names, a.Username)
	}
	return names
}

// validateAuthorization checks csta.authorization.devices. An entry for a
// user that no listener with mode password has would never apply (with mode
// none the name a client sends proves nothing), so it is an error rather
// than a limit an operator believes in.
func validateAuthorization(ps *problems, f *CSTA, listenerUsers map[string][]string) {
	const key = "csta.authorization.devices"
	var known []string
	usersKnown := true
	for _, l := range []struct {
		section string
		auth    Auth
	}{{"csta.auth", f.Auth}, {"csta.websocket.auth", f.WebSocket.Auth}} {
		if l.auth.Mode != "password" {
			continue
		}
		if ps.has(l.section+".users") || ps.has(l.section+".username") {
			usersKnown = false
		}
		known = append(known, listenerUsers[l.section]...)
	}
	seen := make(map[string]bool, len(f.Authorization.Devices))
	for i, item := range f.Authorization.Devices {
		user, _, err := parseDeviceLimit(item)
		switch {
		case err != nil:
			ps.add(key, "item %d %q: %v", i, item, err)
			return
		case seen[user]:
			ps.add(key, "user %q is listed twice", user)
			return
		case usersKnown && !slices.Contains(known, user):
			ps.add(key, "item %d: user %q is not a user of %s", i, user, passwordListeners(f))
			return
		}
		seen[user] = true
	}
}

// passwordListeners names where a user of csta.authorization.devices must be
// configured, for the error message.
func passwordListeners(f *CSTA) string {
	var where []string
	for _, l := range []struct {
		section string
		auth    Auth
	}{{"csta.auth", f.Auth}, {"csta.websocket.auth", f.WebSocket.Auth}} {
		if l.auth.Mode == "password" {
			where = append(where, l.section+".username or "+l.section+".users")
		}
	}
	if len(where) == 0 {
		return "any listener: csta.auth.mode and csta.websocket.auth.mode are none, so no user is authenticated"
	}
	return strings.Join(where, ", nor of ")
}
