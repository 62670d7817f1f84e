package xsi

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ---- Call Center agent (research/xsi.md §2.3) ----------------------------

// ACDState is a call-center agent's ACD state (XSD AgentState).
type ACDState string

// The agent states; Sign-In is transient (the XSP moves on to another).
const (
	ACDSignIn      ACDState = "Sign-In"
	ACDAvailable   ACDState = "Available"
	ACDUnavailable ACDState = "Unavailable"
	ACDWrapUp      ACDState = "Wrap-Up"
	ACDSignOut     ACDState = "Sign-Out"
)

// Valid reports whether s is one of the five states.
func (s ACDState) Valid() bool {
	switch s {
	case ACDSignIn, ACDAvailable, ACDUnavailable, ACDWrapUp, ACDSignOut:
		return true
	}
	return false
}

// CallCenter is an agent's call-center settings as far as the connector
// uses them.
type CallCenter struct {
	AgentACDState        ACDState
	AgentUnavailableCode string // only meaningful while Unavailable
	Queues               []CallCenterQueue
}

// CallCenterQueue is one call center (queue) the agent is assigned to.
type CallCenterQueue struct {
	ID              string // serviceUserId of the call center
	Available       bool   // joined: the agent takes calls from this queue
	PhoneNumber     string
	Extension       string
	IsLogOffAllowed bool
	SkillLevel      int // 0 when not skill-based
}

// GetCallCenter reads the agent's ACD state and queues.
func (c *Client) GetCallCenter(ctx context.Context, userID string) (CallCenter, error) {
	p, err := userPath(userID, "/services/CallCenter")
	if err != nil {
		return CallCenter{}, err
	}
	data, err := c.call(ctx, http.MethodGet, p, nil)
	if err != nil {
		return CallCenter{}, err
	}
	root, err := parseRoot(data, "CallCenter")
	if err != nil {
		return CallCenter{}, err
	}
	f := fields{el: root, what: "CallCenter"}
	cc := CallCenter{
		AgentACDState:        ACDState(f.text("agentACDState")),
		AgentUnavailableCode: f.text("agentUnavailableCode"),
	}
	if cc.AgentACDState != "" && !cc.AgentACDState.Valid() {
		f.fail("agentACDState", string(cc.AgentACDState))
	}
	if list := root.SelectElement("callCenterList"); list != nil {
		for _, d := range list.SelectElements("callCenterDetails") {
			q := fields{el: d, what: "CallCenter callCenterDetails", err: f.err}
			cc.Queues = append(cc.Queues, CallCenterQueue{
				ID:              q.text("serviceUserId"),
				Available:       q.bool("available"),
				PhoneNumber:     q.text("phoneNumber"),
				Extension:       q.text("extension"),
				IsLogOffAllowed: q.bool("isLogOffAllowed"),
				SkillLevel:      q.int("skillLevel"),
			})
			f.err = q.err
		}
	}
	return cc, f.err
}

// SetAgentState changes the agent's ACD state. unavailableCode (1–10
// characters) may only accompany ACDUnavailable; empty sends none. The body
// carries nothing else.
func (c *Client) SetAgentState(ctx context.Context, userID string, state ACDState, unavailableCode string) error {
	if !state.Valid() {
		return fmt.Errorf("xsi: unknown agent state %q", state)
	}
	if unavailableCode != "" {
		if state != ACDUnavailable {
			return fmt.Errorf("xsi: unavailable code %q with state %s", unavailableCode, state)
		}
		if n := len([]rune(unavailableCode)); n > 10 {
			return fmt.Errorf("xsi: unavailable code %q longer than 10 characters", unavailableCode)
		}
	}
	p, err := userPath(userID, "/services/CallCenter")
	if err != nil {
		return err
	}
	doc, root := newBody("CallCenter")
	addText(root, "agentACDState", string(state))
	if unavailableCode != "" {
		addText(root, "agentUnavailableCode", unavailableCode)
	}
	return c.put(ctx, p, doc)
}

// JoinQueue joins (join true) or leaves the agent's call center queueID.
func (c *Client) JoinQueue(ctx context.Context, userID, queueID string, join bool) error {
	if err := checkID("queue ID", queueID); err != nil {
		return err
	}
	p, err := userPath(userID, "/services/CallCenter")
	if err != nil {
		return err
	}
	doc, root := newBody("CallCenter")
	d := root.CreateElement("callCenterList").CreateElement("callCenterDetails")
	addText(d, "serviceUserId", queueID)
	addBool(d, "available", join)
	return c.put(ctx, p, doc)
}

// UnavailableCode is one of a group's (or enterprise's) agent unavailable
// codes.
type UnavailableCode struct {
	Code        string
	Description string
	Active      bool
	Default     bool // isDefault
}

// UnavailableCodes lists the agent unavailable codes of groupID, whose
// enterprise or service provider is parentID (sent as enterpriseId; empty
// sends none):
// GET /v2.0/group/{groupId}/services/CallCenter/UnavailableCodes
// (research/xsi.md §2.3, spec §3.5.14.2).
func (c *Client) UnavailableCodes(ctx context.Context, groupID, parentID string) ([]UnavailableCode, error) {
	if err := checkID("group ID", groupID); err != nil {
		return nil, err
	}
	p := "/group/" + url.PathEscape(groupID) + "/services/CallCenter/UnavailableCodes"
	if parentID != "" {
		p += "?" + url.Values{"enterpriseId": {parentID}}.Encode()
	}
	data, err := c.call(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, err
	}
	root, err := parseRoot(data, "ACDAgentUnavailableCodes")
	if err != nil {
		return nil, err
	}
	var out []UnavailableCode
	var ferr error
	if list := root.SelectElement("unavailableCodes"); list != nil {
		for _, d := range list.SelectElements("unavailableCodeDetail") {
			f := fields{el: d, what: "ACDAgentUnavailableCodes unavailableCodeDetail", err: ferr}
			u := UnavailableCode{Code: f.text("code"), Description: f.text("description"), Active: f.bool("active")}
			if v := d.SelectAttrValue("isDefault", ""); v != "" {
				u.Default, err = strconv.ParseBool(v)
				if err != nil {
					f.fail("isDefault", v)
				}
			}
			ferr = f.err
			out = append(out, u)
		}
	}
	return out, ferr
}

// ---- Call Forwarding Always / Busy / No Answer (research/xsi.md §2.4) ----

// Forwarding is a call-forwarding service's settings.
type Forwarding struct {
	Active               bool
	ForwardToPhoneNumber string // as the XSP has it: dialable string or URI; not normalised
	NumberOfRings        int    // No Answer only: 0 or 2–20
	RingSplash           bool   // Always only
}

// The forwarding services, by XSD root element and path.
const (
	cfAlways   = "CallForwardingAlways"
	cfBusy     = "CallForwardingBusy"
	cfNoAnswer = "CallForwardingNoAnswer"
)

// GetCallForwardingAlways reads the user's Call Forwarding Always.
func (c *Client) GetCallForwardingAlways(ctx context.Context, userID string) (Forwarding, error) {
	return c.getForwarding(ctx, userID, cfAlways)
}

// GetCallForwardingBusy reads the user's Call Forwarding Busy.
func (c *Client) GetCallForwardingBusy(ctx context.Context, userID string) (Forwarding, error) {
	return c.getForwarding(ctx, userID, cfBusy)
}

// GetCallForwardingNoAnswer reads the user's Call Forwarding No Answer.
func (c *Client) GetCallForwardingNoAnswer(ctx context.Context, userID string) (Forwarding, error) {
	return c.getForwarding(ctx, userID, cfNoAnswer)
}

// SetCallForwardingAlways writes active, ringSplash and, when not empty,
// forwardToPhoneNumber (an empty number leaves the stored one alone).
// Read-modify-write with GetCallForwardingAlways to keep ringSplash.
func (c *Client) SetCallForwardingAlways(ctx context.Context, userID string, f Forwarding) error {
	return c.setForwarding(ctx, userID, cfAlways, f)
}

// SetCallForwardingBusy writes active and, when not empty,
// forwardToPhoneNumber. RingSplash and NumberOfRings do not apply.
func (c *Client) SetCallForwardingBusy(ctx context.Context, userID string, f Forwarding) error {
	return c.setForwarding(ctx, userID, cfBusy, f)
}

// SetCallForwardingNoAnswer writes active and, when set,
// forwardToPhoneNumber and numberOfRings (0 leaves the rings alone).
func (c *Client) SetCallForwardingNoAnswer(ctx context.Context, userID string, f Forwarding) error {
	return c.setForwarding(ctx, userID, cfNoAnswer, f)
}

func (c *Client) getForwarding(ctx context.Context, userID, service string) (Forwarding, error) {
	p, err := userPath(userID, "/services/"+service)
	if err != nil {
		return Forwarding{}, err
	}
	data, err := c.call(ctx, http.MethodGet, p, nil)
	if err != nil {
		return Forwarding{}, err
	}
	root, err := parseRoot(data, service)
	if err != nil {
		return Forwarding{}, err
	}
	f := fields{el: root, what: service}
	fw := Forwarding{
		Active:               f.bool("active"),
		ForwardToPhoneNumber: f.text("forwardToPhoneNumber"),
	}
	if service == cfNoAnswer {
		fw.NumberOfRings = f.int("numberOfRings")
	}
	if service == cfAlways {
		fw.RingSplash = f.bool("ringSplash")
	}
	return fw, f.err
}

func (c *Client) setForwarding(ctx context.Context, userID, service string, fw Forwarding) error {
	if fw.Active && fw.ForwardToPhoneNumber == "" {
		// Allowed: the XSP uses the stored number, or refuses with 400.
		c.logger.Debug("xsi: forwarding activated without a number", "service", service, "user", userID)
	}
	if service != cfNoAnswer && fw.NumberOfRings != 0 {
		return fmt.Errorf("xsi: %s has no numberOfRings", service)
	}
	if service == cfNoAnswer && (fw.NumberOfRings < 0 || fw.NumberOfRings == 1 || fw.NumberOfRings > 20) {
		return fmt.Errorf("xsi: numberOfRings %d not 0 or 2–20", fw.NumberOfRings)
	}
	if service != cfAlways && fw.RingSplash {
		return fmt.Errorf("xsi: %s has no ringSplash", service)
	}
	p, err := userPath(userID, "/services/"+service)
	if err != nil {
		return err
	}
	doc, root := newBody(service)
	addBool(root, "active", fw.Active)
	if fw.ForwardToPhoneNumber != "" {
		addText(root, "forwardToPhoneNumber", fw.ForwardToPhoneNumber)
	}
	switch service {
	case cfAlways:
		addBool(root, "ringSplash", fw.RingSplash)
	case cfNoAnswer:
		if fw.NumberOfRings != 0 {
			addText(root, "numberOfRings", strconv.Itoa(fw.NumberOfRings))
		}
	}
	return c.put(ctx, p, doc)
}

// ---- Do Not Disturb (research/xsi.md §2.5) --------------------------------

// DoNotDisturb is the user's Do Not Disturb.
type DoNotDisturb struct {
	Active     bool
	RingSplash bool
}

// GetDoNotDisturb reads the user's Do Not Disturb.
func (c *Client) GetDoNotDisturb(ctx context.Context, userID string) (DoNotDisturb, error) {
	p, err := userPath(userID, "/services/DoNotDisturb")
	if err != nil {
		return DoNotDisturb{}, err
	}
	data, err := c.call(ctx, http.MethodGet, p, nil)
	if err != nil {
		return DoNotDisturb{}, err
	}
	root, err := parseRoot(data, "DoNotDisturb")
	if err != nil {
		return DoNotDisturb{}, err
	}
	f := fields{el: root, what: "DoNotDisturb"}
	d := DoNotDisturb{Active: f.bool("active"), RingSplash: f.bool("ringSplash")}
	return d, f.err
}

// SetDoNotDisturb writes active and ringSplash.
func (c *Client) SetDoNotDisturb(ctx context.Context, userID string, d DoNotDisturb) error {
	p, err := userPath(userID, "/services/DoNotDisturb")
	if err != nil {
		return err
	}
	doc, root := newBody("DoNotDisturb")
	addBool(root, "active", d.Active)
	addBool(root, "ringSplash", d.RingSplash)
	return c.put(ctx, p, doc)
}

// ---- Hoteling Guest / Host (research/xsi.md §2.6, §2.7) ------------------

// HotelingGuest is the guest side of hoteling. HostUserID is empty while
// not associated; the Host* details are read-only.
type HotelingGuest struct {
	Active                       bool
	EnableAssociationLimit       bool
	AssociationLimitHours        int
	HostUserID                   string
	HostLastName                 string
	HostFirstName                string
	HostAssociationDateTime      time.Time
	HostEnforcesAssociationLimit bool
	HostAssociationLimitHours    int
}

// GetHotelingGuest reads the guest's hoteling settings and association.
func (c *Client) GetHotelingGuest(ctx context.Context, userID string) (HotelingGuest, error) {
	p, err := userPath(userID, "/services/HotelingGuest")
	if err != nil {
		return HotelingGuest{}, err
	}
	data, err := c.call(ctx, http.MethodGet, p, nil)
	if err != nil {
		return HotelingGuest{}, err
	}
	root, err := parseRoot(data, "HotelingGuest")
	if err != nil {
		return HotelingGuest{}, err
	}
	f := fields{el: root, what: "HotelingGuest"}
	g := HotelingGuest{
		Active:                       f.bool("active"),
		EnableAssociationLimit:       f.bool("enableAssociationLimit"),
		AssociationLimitHours:        f.int("associationLimitHours"),
		HostUserID:                   f.text("hostUserId"), // xsi:nil reads as ""
		HostLastName:                 f.text("hostLastName"),
		HostFirstName:                f.text("hostFirstName"),
		HostAssociationDateTime:      f.time("hostAssociationDateTime"),
		HostEnforcesAssociationLimit: f.bool("hostEnforcesAssociationLimit"),
		HostAssociationLimitHours:    f.int("hostAssociationLimitHours"),
	}
	return g, f.err
}

// AssociateGuest associates guestUserID with host hostUserID (activating
// the guest's Hoteling Guest): the body is active=true and hostUserId.
func (c *Client) AssociateGuest(ctx context.Context, guestUserID, hostUserID string) error {
	if err := checkID("host user ID", hostUserID); err != nil {
		return err
	}
	p, err := userPath(guestUserID, "/services/HotelingGuest")
	if err != nil {
		return err
	}
	doc, root := newBody("HotelingGuest")
	addBool(root, "active", true)
	addText(root, "hostUserId", hostUserID)
	return c.put(ctx, p, doc)
}

// EndGuestAssociation ends the guest's association by setting hostUserId
// to nil (spec §3.5.3.48); the guest's service stays active.
func (c *Client) EndGuestAssociation(ctx context.Context, guestUserID string) error {
	p, err := userPath(guestUserID, "/services/HotelingGuest")
	if err != nil {
		return err
	}
	doc, root := newBody("HotelingGuest")
	// Prefix "xsi" bound explicitly to XML Schema instance, not to NS.
	root.CreateAttr("xmlns:xsi", xsiInstanceNS)
	root.CreateElement("hostUserId").CreateAttr("xsi:nil", "true")
	return c.put(ctx, p, doc)
}

// HotelingHost is the host side of hoteling. The XSD gives the guest's
// name, number and association time, but not the guest's user ID; a guest
// is associated when HasGuest.
type HotelingHost struct {
	Active                   bool
	EnforceAssociationLimit  bool
	AssociationLimitHours    int
	AccessLevel              string // "Enterprise" or "Group"
	GuestLastName            string
	GuestFirstName           string
	GuestPhoneNumber         string
	GuestExtension           string
	GuestLocationDialingCode string
	GuestAssociationDateTime time.Time
}

// HasGuest reports whether the host shows an associated guest.
func (h HotelingHost) HasGuest() bool {
	return !h.GuestAssociationDateTime.IsZero() || h.GuestLastName != "" || h.GuestFirstName != "" ||
		h.GuestPhoneNumber != "" || h.GuestExtension != ""
}

// GetHotelingHost reads the host's hoteling settings and guest.
func (c *Client) GetHotelingHost(ctx context.Context, userID string) (HotelingHost, error) {
	p, err := userPath(userID, "/services/HotelingHost")
	if err != nil {
		return HotelingHost{}, err
	}
	data, err := c.call(ctx, http.MethodGet, p, nil)
	if err != nil {
		return HotelingHost{}, err
	}
	root, err := parseRoot(data, "HotelingHost")
	if err != nil {
		return HotelingHost{}, err
	}
	f := fields{el: root, what: "HotelingHost"}
	h := HotelingHost{
		Active:                   f.bool("active"),
		EnforceAssociationLimit:  f.bool("enforceAssociationLimit"),
		AssociationLimitHours:    f.int("associationLimitHours"),
		AccessLevel:              f.text("accessLevel"),
		GuestLastName:            f.text("guestLastName"),
		GuestFirstName:           f.text("guestFirstName"),
		GuestPhoneNumber:         f.text("guestPhoneNumber"),
		GuestExtension:           f.text("guestExtension"),
		GuestLocationDialingCode: f.text("guestLocationDialingCode"),
		GuestAssociationDateTime: f.time("guestAssociationDateTime"),
	}
	return h, f.err
}

// RemoveGuestAssociation ends whatever guest association the host has:
// the body is removeGuestAssociation=true only.
func (c *Client) RemoveGuestAssociation(ctx context.Context, hostUserID string) error {
	p, err := userPath(hostUserID, "/services/HotelingHost")
	if err != nil {
		return err
	}
	doc, root := newBody("HotelingHost")
	addBool(root, "removeGuestAssociation", true)
	return c.put(ctx, p, doc)
}

// HotelingHostEntry is one host a guest may associate with. The XSD
// (AvailableHotelingHosts) lists user IDs only.
type HotelingHostEntry struct {
	UserID string
}

// ListHotelingHosts lists the hosts userID (a guest) may associate with:
// GET /v2.0/user/{userId}/directories/HotelingHosts (spec §3.5.7.12).
func (c *Client) ListHotelingHosts(ctx context.Context, userID string) ([]HotelingHostEntry, error) {
	p, err := userPath(userID, "/directories/HotelingHosts")
	if err != nil {
		return nil, err
	}
	data, err := c.call(ctx, http.MethodGet, p, nil)
	if err != nil {
		return nil, err
	}
	root, err := parseRoot(data, "AvailableHotelingHosts")
	if err != nil {
		return nil, err
	}
	var out []HotelingHostEntry
	if list := root.SelectElement("hostUserIdList"); list != nil {
		for _, e := range list.ChildElements() {
			// XSD userID; the spec example writes userid (research §8).
			if e.Tag == "userID" || e.Tag == "userid" || e.Tag == "userId" {
				out = append(out, HotelingHostEntry{UserID: strings.TrimSpace(e.Text())})
			}
		}
	}
	return out, nil
}
