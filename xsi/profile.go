package xsi

import (
	"context"
	"errors"
	"net/http"
)

// Profile is the part of a user's profile (GET user/{userId}/profile,
// XSIProfile.xsd Profile/details, UserDetails) the connector uses.
type Profile struct {
	UserID            string
	FirstName         string
	LastName          string
	GroupID           string
	ServiceProviderID string
	Number            string
	Extension         string
}

// GetProfile reads a user's profile; a user BroadWorks does not know is
// ErrNotFound.
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
	}, f.err
}
