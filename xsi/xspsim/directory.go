package xspsim

import (
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// The simulated BroadWorks directory: enterprises (service providers),
// their groups and the users in them. Group IDs are unique only within an
// enterprise, so a group is keyed by both.

type enterprise struct {
	id   string
	subs map[string]*subscription // ServiceProvider targets, by subscription ID; nil while none
	// users are its users in the order they were added. The slice only
	// grows by append and users are never changed or removed, so a slice
	// taken under the lock can be read after it (the Enterprise directory
	// searches it without holding the lock).
	users []*userState
}

type group struct {
	id   string
	ent  *enterprise
	subs map[string]*subscription // Group targets, by subscription ID; nil while none
}

type groupKey struct{ ent, grp string }

// groupLocked returns the group grp of enterprise ent, creating both as
// needed.
func (s *Server) groupLocked(ent, grp string) *group {
	k := groupKey{ent, grp}
	if g := s.groups[k]; g != nil {
		return g
	}
	e := s.ents[ent]
	if e == nil {
		e = &enterprise{id: ent}
		s.ents[ent] = e
	}
	g := &group{id: grp, ent: e}
	s.groups[k] = g
	return g
}

// reaches reports whether the credential may reach enterprise ent
// (Config.AdminEnterprises).
func (s *Server) reaches(ent string) bool { return s.reach == nil || s.reach[ent] }

func outOfScope(what, id, ent string) *simError {
	return errf(http.StatusForbidden, ErrCodeForbidden, "%s %s (enterprise %s) is outside the administrator's scope", what, id, ent)
}

// checkUser applies the rules for a user to seed or add; exists reports
// whether an ID is taken already.
func checkUser(u *User, exists func(string) bool) error {
	switch {
	case u.ID == "" || strings.TrimSpace(u.ID) != u.ID || strings.ContainsAny(u.ID, "/ \t\r\n"):
		return fmt.Errorf("xspsim: user ID %q: must be non-empty, without '/' or white space", u.ID)
	case utf8.RuneCountInString(u.FirstName) > 30 || utf8.RuneCountInString(u.LastName) > 30:
		return fmt.Errorf("xspsim: user %s: first and last name must be at most 30 characters (XSD FirstName, LastName)", u.ID)
	case len(u.PhoneNumber) > 23:
		return fmt.Errorf("xspsim: user %s: PhoneNumber %q longer than 23 characters (XSD DN)", u.ID, u.PhoneNumber)
	case u.Extension != "" && (len(u.Extension) < 2 || len(u.Extension) > 20):
		return fmt.Errorf("xspsim: user %s: Extension %q must be 2 to 20 characters (XSD Extension)", u.ID, u.Extension)
	case exists(u.ID):
		return fmt.Errorf("xspsim: user %s exists already", u.ID)
	case u.ACDState != "" && !u.CallCenter:
		return fmt.Errorf("xspsim: user %s: ACDState %q without the Call Center agent service", u.ID, u.ACDState)
	case u.ACDState != "" && !validState(u.ACDState):
		return fmt.Errorf("xspsim: user %s: ACDState %q is not one of Sign-In, Available, Unavailable, Wrap-Up, Sign-Out", u.ID, u.ACDState)
	}
	return nil
}

// seedLocked adds users (checked) in order. An invalid user is skipped
// and the first problem kept for Start.
func (s *Server) seedLocked(users []User) {
	now := time.Now()
	def := s.defaultCode()
	exists := func(id string) bool { return s.users[id] != nil }
	for i := range users {
		u := &users[i]
		if err := checkUser(u, exists); err != nil {
			if s.seedErr == nil {
				s.seedErr = err
			}
			s.log.Warn("xspsim: user skipped", "err", err)
			continue
		}
		s.insertLocked(u, now, def)
	}
}

func (s *Server) insertLocked(u *User, now time.Time, defaultCode string) {
	ent, grp := u.EnterpriseID, u.GroupID
	if ent == "" {
		ent = s.cfg.EnterpriseID
	}
	if grp == "" {
		grp = s.cfg.GroupID
	}
	g := s.groupLocked(ent, grp)
	us := newUserState(u, g, now, defaultCode)
	us.seedIdx = int32(len(s.order))
	s.users[u.ID] = us
	g.ent.users = append(g.ent.users, us)
	s.order = append(s.order, us)
	if u.HotelingHost {
		s.hosts = append(s.hosts, us)
	}
}

// AddUsers adds users while the server runs, as an administrator creating
// them in BroadWorks would: each gets its services at their defaults, and
// its events reach the subscriptions to its group and enterprise at once.
// Users are new ones only: an ID that exists (or appears twice) is an
// error naming it, and then nothing is added.
func (s *Server) AddUsers(users ...User) error {
	batch := make(map[string]bool, len(users))
	s.mu.Lock()
	defer s.mu.Unlock()
	exists := func(id string) bool { return s.users[id] != nil || batch[id] }
	for i := range users {
		if err := checkUser(&users[i], exists); err != nil {
			return err
		}
		batch[users[i].ID] = true
	}
	owned := append([]User(nil), users...) // the caller's slice may be reused
	now := time.Now()
	def := s.defaultCode()
	for i := range owned {
		s.insertLocked(&owned[i], now, def)
	}
	return nil
}

// HasUser reports whether userID exists.
func (s *Server) HasUser(userID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.users[userID] != nil
}

// UserCount is the number of users.
func (s *Server) UserCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users)
}
