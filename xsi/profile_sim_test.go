package xsi

import (
	"context"
	"errors"
	"testing"

	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// TestGetProfileAgainstSimulator: GetProfile over real HTTP against
// xsi/xspsim — the details (host1's Latin-1 name through the ISO-8859-1
// body), ErrNotFound for an unknown user, ErrForbidden outside the
// credential's enterprises — and the answer to a service the user does not
// have, ErrServiceNotAssigned, told apart from a transport failure.
func TestGetProfileAgainstSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	sim := newActionsSim(t, func(c *xspsim.Config) {
		c.Users[0].PhoneNumber, c.Users[0].Extension = "+12025550100", "100"
		c.Users = append(c.Users, xspsim.User{ID: "far@example.org", EnterpriseID: "ent2", GroupID: "g9"})
		c.AdminEnterprises = []string{"ent1"}
	})
	c, err := NewClient(actionsConfig(sim.URL()), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()

	for _, tc := range []struct {
		user string
		want Profile
	}{
		{asAgent, Profile{UserID: asAgent, FirstName: "A", LastName: "One", GroupID: "grp1", ServiceProviderID: "ent1", Number: "+12025550100", Extension: "100"}},
		{asHost1, Profile{UserID: asHost1, FirstName: "José", LastName: "Höst", GroupID: "grp1", ServiceProviderID: "ent1"}},
	} {
		got, err := c.GetProfile(ctx, tc.user)
		if err != nil || got != tc.want {
			t.Errorf("GetProfile(%s) = %+v, %v; want %+v", tc.user, got, err, tc.want)
		}
	}
	_, err = c.GetProfile(ctx, asNobody)
	wantXsiErr(t, "unknown user", err, ErrNotFound, 4008)
	_, err = c.GetProfile(ctx, "far@example.org")
	wantXsiErr(t, "user of another enterprise", err, ErrForbidden, 0)
	if _, err := c.GetProfile(ctx, "a/b@example.com"); err == nil {
		t.Error("a user ID with '/' was sent")
	}

	// A service the user does not have: 400 with errorCode 4410.
	_, err = c.GetCallCenter(ctx, asGuest2)
	wantXsiErr(t, "CallCenter of a non-agent", err, ErrServiceNotAssigned, 4410)
	_, err = c.GetHotelingHost(ctx, asAgent)
	wantXsiErr(t, "HotelingHost of a non-host", err, ErrServiceNotAssigned, 4410)
	err = c.SetAgentState(ctx, asGuest2, ACDAvailable, "")
	wantXsiErr(t, "SetAgentState of a non-agent", err, ErrServiceNotAssigned, 4410)
	if !errors.Is(err, ErrBadRequest) || MayApplyLate(err) || errors.Is(err, ErrLinkDown) {
		t.Errorf("not-assigned error %v: want a 400 answer, not a transport failure", err)
	}
	// Another 400 is not "not assigned".
	err = c.SetAgentState(ctx, asAgent, ACDUnavailable, "NOPE")
	if !errors.Is(err, ErrBadRequest) || errors.Is(err, ErrServiceNotAssigned) {
		t.Errorf("bad code: %v", err)
	}

	// A transport failure is neither.
	sim.Kill()
	_, err = c.GetCallCenter(ctx, asGuest2)
	if err == nil || errors.Is(err, ErrServiceNotAssigned) || errors.Is(err, ErrBadRequest) {
		t.Errorf("XSP down: %v", err)
	}
	var xe *Error
	if errors.As(err, &xe) {
		t.Errorf("XSP down gave an XSP answer: %v", err)
	}
}
