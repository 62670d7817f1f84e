package xsi

import (
	"context"
	"errors"
	"net/http"
)

// Profile is what the connector uses of a user's BroadWorks profile
// (XSIProfile.xsd Profile/details, XSD UserDetails).
type Profile struct {
	UserID            string
	FirstName         string
	LastName          string
	GroupID           string
	ServiceProviderID string // the enterprise or service provider
	Number            string // the user's directory number, "" when none
	Extension         string // "" when none
}

// GetProfile reads the user's profile:
// GET /v2.0/user/{userId}/profile (XSIProfile.xsd). An unknown user is
// an error matching ErrNotFound; one outside the credential's scope,
// ErrForbidden.
func (c *Client) GetProfile(ctx context.Context, userID string) (Profile, error) {
	p, err := userPath(userID, "/profile")
	if err != nil {
		return Profile{}, err
	}
	data, err := c.call(ctx, http.MethodGet, p, nil)
	if err != nil {
		return Profile{}, err
	}
	root, err := parseRoot(data, "Profile")
	if err != nil {
		return Profile{}, err
	}
	d := root.SelectElement("details")
	if d == nil {
		return Profile{}, errors.New("xsi: Profile without details")
	}
	f := fields{el: d, what: "Profile details"}
	return Profile{
		UserID:            f.text("userId"),
		FirstName:         f.text("firstName"),
		LastName:          f.text("lastName"),
		GroupID:           f.text("groupId"),
		ServiceProviderID: f.text("serviceProvider"),
		Number:            f.text("number"),
		Extension:         f.text("extension"),
	}, nil
}
