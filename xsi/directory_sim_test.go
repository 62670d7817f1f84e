package xsi

import (
	"context"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/broadworks-connector/connector/xsi/xspsim"
)

// TestSearchEnterpriseDirectoryAgainstSimulator: SearchEnterpriseDirectory
// over real HTTP against xsi/xspsim — by number and by extension, only
// exact matches (a number or extension that is a prefix of another user's
// does not find that user; the same extension in another group finds
// both; another enterprise's users are never found), the request it sends,
// ErrNotFound for an unknown requesting user, and values with '*' (or
// empty) refused without a request.
func TestSearchEnterpriseDirectoryAgainstSimulator(t *testing.T) {
	if testing.Short() {
		t.Skip("integration")
	}
	const (
		asPrefix = "prefix@example.com"
		asOther  = "other@example.com"
	)
	sim := newActionsSim(t, func(c *xspsim.Config) {
		c.Users = append(c.Users,
			// asGuest1 has +12025550101 / 101.
			xspsim.User{ID: asPrefix, FirstName: "P", LastName: "Re", PhoneNumber: "+1202555010", Extension: "10"},
			xspsim.User{ID: asOther, FirstName: "O", LastName: "Grp", GroupID: "grp2", PhoneNumber: "+12025550199", Extension: "101"},
			xspsim.User{ID: "far@example.org", EnterpriseID: "ent2", PhoneNumber: "+12025550101", Extension: "101"},
		)
	})
	c, err := NewClient(actionsConfig(sim.URL()), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ctx := context.Background()

	guest1 := DirectoryEntry{UserID: asGuest1, FirstName: "G", LastName: "One", GroupID: "grp1", Number: "+12025550101", Extension: "101"}
	prefix := DirectoryEntry{UserID: asPrefix, FirstName: "P", LastName: "Re", GroupID: "grp1", Number: "+1202555010", Extension: "10"}
	other := DirectoryEntry{UserID: asOther, FirstName: "O", LastName: "Grp", GroupID: "grp2", Number: "+12025550199", Extension: "101"}
	for _, tc := range []struct {
		name      string
		q         DirectoryQuery
		wantQuery string // the query string sent
		want      []DirectoryEntry
	}{
		{"number", DirectoryQuery{Number: "+12025550101"}, "number=%2B12025550101&results=20", []DirectoryEntry{guest1}},
		{"number that is a prefix of another", DirectoryQuery{Number: "+1202555010"}, "number=%2B1202555010&results=20", []DirectoryEntry{prefix}},
		{"number and extension, both", DirectoryQuery{Number: "+12025550199", Extension: "101"}, "extension=101&number=%2B12025550199&results=20", []DirectoryEntry{other}},
		{"number and another's extension", DirectoryQuery{Number: "+12025550199", Extension: "10"}, "extension=10&number=%2B12025550199&results=20", nil},
		{"first and last name", DirectoryQuery{FirstName: "O", LastName: "Grp"}, "firstName=O&lastName=Grp&results=20", []DirectoryEntry{other}},
		{"a first name that is a prefix", DirectoryQuery{FirstName: "G", LastName: "On"}, "firstName=G&lastName=On&results=20", nil},
		{"unknown number", DirectoryQuery{Number: "+1999"}, "number=%2B1999&results=20", nil},
		{"extension in two groups", DirectoryQuery{Extension: "101"}, "extension=101&results=20", []DirectoryEntry{guest1, other}},
		{"extension that is a prefix of another", DirectoryQuery{Extension: "10"}, "extension=10&results=20", []DirectoryEntry{prefix}},
		{"unknown extension", DirectoryQuery{Extension: "999"}, "extension=999&results=20", nil},
	} {
		sim.ClearRequests()
		got, err := c.SearchEnterpriseDirectory(ctx, asAgent, tc.q)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
		reqs := sim.Requests()
		if len(reqs) != 1 || reqs[0].Method != "GET" || !strings.HasSuffix(reqs[0].Path, "/user/"+asAgent+"/directories/Enterprise") {
			t.Errorf("%s: requests %+v, want one GET of the Enterprise directory", tc.name, reqs)
			continue
		}
		if q, _ := url.ParseQuery(reqs[0].Query); q.Encode() != tc.wantQuery {
			t.Errorf("%s: query %q, want %q", tc.name, reqs[0].Query, tc.wantQuery)
		}
	}

	// The directory is the requesting user's enterprise: from ent2 the same
	// number finds far@example.org only.
	got, err := c.SearchEnterpriseDirectory(ctx, "far@example.org", DirectoryQuery{Number: "+12025550101"})
	if err != nil || len(got) != 1 || got[0].UserID != "far@example.org" {
		t.Errorf("search from ent2: %+v, %v", got, err)
	}
	_, err = c.SearchEnterpriseDirectory(ctx, asNobody, DirectoryQuery{Number: "+12025550101"})
	wantXsiErr(t, "unknown requesting user", err, ErrNotFound, 4008)

	// Values the XSP would read as wildcards, and no value at all: refused
	// by the client, nothing sent.
	sim.ClearRequests()
	for _, q := range []DirectoryQuery{
		{Number: "+1202555*"}, {Number: "*"}, {Extension: "1*1"}, {Extension: "*"}, {}, {Number: " "},
		{Number: "+1202555010\x00"}, {Extension: "10", Number: "+1*"}, {FirstName: "G*"}, {LastName: "*"},
	} {
		if got, err := c.SearchEnterpriseDirectory(ctx, asAgent, q); err == nil {
			t.Errorf("%+v: %+v, want an error", q, got)
		}
	}
	if reqs := sim.Requests(); len(reqs) != 0 {
		t.Errorf("refused searches sent %d requests: %+v", len(reqs), reqs)
	}
}
