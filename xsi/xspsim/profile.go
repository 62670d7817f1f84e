package xspsim

import (
	"net/http"

	"github.com/beevik/etree"
)

// handleProfile serves GET .../user/{userId}/profile: the user's Profile
// (XSIProfile.xsd) with details — userId, names, groupId, serviceProvider,
// number, extension — and the (required, here empty) additionalDetails.
// The links real XSPs add (fac, registrations, ...) are left out: the
// simulator serves none of them.
func (s *Server) handleProfile(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	u, err := s.lookupUser(r.PathValue("userId"))
	var b []byte
	if err == nil {
		b = s.actionsBytes("Profile", func(root *etree.Element) { profileXML(u, root) })
	}
	s.mu.Unlock()
	if err != nil {
		s.writeError(w, err)
		return
	}
	s.sendActions(w, http.StatusOK, b)
}

func profileXML(u *userState, root *etree.Element) {
	userDetailsXML(root.CreateElement("details"), u)
	root.CreateElement("additionalDetails")
}

// userDetailsXML fills d with u as XSD UserDetails (Profile/details,
// Enterprise directoryDetails), in the XSD's element order: userId,
// firstName, lastName, groupId, serviceProvider, number (PhoneNumber),
// extension; empty ones left out.
func userDetailsXML(d *etree.Element, u *userState) {
	add(d, "userId", u.ID)
	if u.FirstName != "" {
		add(d, "firstName", u.FirstName)
	}
	if u.LastName != "" {
		add(d, "lastName", u.LastName)
	}
	add(d, "groupId", u.grp.id)
	add(d, "serviceProvider", u.grp.ent.id).CreateAttr("isEnterprise", "true")
	if u.PhoneNumber != "" {
		add(d, "number", u.PhoneNumber)
	}
	if u.Extension != "" {
		add(d, "extension", u.Extension)
	}
}
