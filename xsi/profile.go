package xsi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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

// DirectoryEntry is one user an enterprise directory search found
// (XSIDirectories.xsd Enterprise, enterpriseDirectory/directoryDetails:
// XSD UserAdditionalEnterpriseGroupDetails).
type DirectoryEntry struct {
	UserID    string
	FirstName string
	LastName  string
	GroupID   string
	Number    string
	Extension string
}

// DirectoryQuery searches the enterprise directory for the users whose
// every field given is exactly the one asked for (empty fields are not
// searched). BroadWorks' search may match more loosely than asked (its
// values take '*' wildcards and a /i suffix), so SearchEnterpriseDirectory
// keeps only exact matches.
type DirectoryQuery struct {
	Number    string
	Extension string
	FirstName string
	LastName  string
}

// maxDirectoryResults bounds a directory search's answer: a number or an
// extension names one user, a few in different groups at most.
const maxDirectoryResults = 20

// SearchEnterpriseDirectory finds, in userID's enterprise directory, the
// users whose fields are exactly q's:
// GET /v2.0/user/{userId}/directories/Enterprise?number=…&results=20.
func (c *Client) SearchEnterpriseDirectory(ctx context.Context, userID string, q DirectoryQuery) ([]DirectoryEntry, error) {
	criteria := []struct {
		key, value string
		of         func(DirectoryEntry) string
	}{
		{"number", q.Number, func(e DirectoryEntry) string { return e.Number }},
		{"extension", q.Extension, func(e DirectoryEntry) string { return e.Extension }},
		{"firstName", q.FirstName, func(e DirectoryEntry) string { return e.FirstName }},
		{"lastName", q.LastName, func(e DirectoryEntry) string { return e.LastName }},
	}
	query := url.Values{"results": {strconv.Itoa(maxDirectoryResults)}}
	for _, cr := range criteria {
		if cr.value == "" {
			continue
		}
		if strings.TrimSpace(cr.value) == "" || strings.ContainsAny(cr.value, "*\x00") {
			return nil, fmt.Errorf("xsi: directory search for %s %q", cr.key, cr.value)
		}
		query.Set(cr.key, cr.value)
	}
	if len(query) == 1 {
		return nil, errors.New("xsi: directory search for nothing")
	}
	p, err := userPath(userID, "/directories/Enterprise")
	if err != nil {
		return nil, err
	}
	data, err := c.call(ctx, http.MethodGet, p+"?"+query.Encode(), nil)
	if err != nil {
		return nil, err
	}
	root, err := parseRoot(data, "Enterprise")
	if err != nil {
		return nil, err
	}
	var out []DirectoryEntry
	if list := root.SelectElement("enterpriseDirectory"); list != nil {
	entries:
		for _, d := range list.SelectElements("directoryDetails") {
			f := fields{el: d, what: "Enterprise directoryDetails"}
			e := DirectoryEntry{UserID: f.text("userId"), FirstName: f.text("firstName"), LastName: f.text("lastName"),
				GroupID: f.text("groupId"), Number: f.text("number"), Extension: f.text("extension")}
			if e.UserID == "" {
				continue
			}
			for _, cr := range criteria {
				if cr.value != "" && cr.of(e) != cr.value {
					continue entries
				}
			}
			out = append(out, e)
		}
	}
	return out, nil
}
