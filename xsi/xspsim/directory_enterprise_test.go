package xspsim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// entDirConfig is dirConfig plus anne (grp2), whose number and extension
// are prefixes of agent1's, and e2c of ent2 with agent1's number. Users of
// ent1 by ID: agent1, agent2, anne, desk1, desk2, g2a, g2desk (no names),
// plain.
func entDirConfig() Config {
	cfg := dirConfig()
	cfg.Users = append(cfg.Users,
		User{ID: "anne@example.com", FirstName: "anne", LastName: "Smith", PhoneNumber: "20255501", Extension: "01", GroupID: "grp2"},
		User{ID: "e2c@example.org", EnterpriseID: "ent2", PhoneNumber: "2025550101"},
	)
	return cfg
}

// enterprisePage is one parsed Enterprise answer: the IDs found (local
// parts, comma-separated) and the paging counts.
type enterprisePage struct {
	ids                   string
	start, records, total string
}

func (h *harness) enterpriseDir(user, query string) enterprisePage {
	h.t.Helper()
	path := ActionsPrefix + "/user/" + user + "/directories/Enterprise"
	if query != "" {
		path += "?" + query
	}
	r := parse(h.t, h.mustStatus(200, "GET", path, ""))
	if r.Tag != "Enterprise" {
		h.t.Fatalf("root %s, want Enterprise", r.Tag)
	}
	var ids []string
	for _, d := range r.FindElements("enterpriseDirectory/directoryDetails") {
		id, _, _ := strings.Cut(text(d, "userId"), "@")
		ids = append(ids, id)
	}
	return enterprisePage{strings.Join(ids, ","), text(r, "startIndex"), text(r, "numberOfRecords"), text(r, "totalAvailableRecords")}
}

// TestEnterpriseDirectorySearch proves the search parameters of
// GET .../directories/Enterprise: exact matches (a prefix is not a match),
// '*' wildcards, the /i suffix, several parameters ANDed unless
// searchCriteriaModeOr=true, a user without the field never matching, and
// only users of the requesting user's enterprise, sorted by user ID.
func TestEnterpriseDirectorySearch(t *testing.T) {
	h := newHarness(t, entDirConfig())
	const all = "agent1,agent2,anne,desk1,desk2,g2a,g2desk,plain"
	for _, tc := range []struct {
		name, user, query, want string
	}{
		{"everyone", "agent1@example.com", "", all},
		{"from another group", "g2desk@example.com", "", all},
		{"number", "agent1@example.com", "number=2025550101", "agent1"},
		{"number prefix is not a match", "agent1@example.com", "number=20255501", "anne"},
		{"number wildcard", "agent1@example.com", "number=20255501*", "agent1,anne"},
		{"any number", "agent1@example.com", "number=*", "agent1,anne"},
		{"extension", "agent1@example.com", "extension=01", "anne"},
		{"extension suffix", "agent1@example.com", "extension=*01", "agent1,anne"},
		{"extension inner wildcard", "agent1@example.com", "extension=0*1", "agent1,anne"},
		{"no such number", "agent1@example.com", "number=999", ""},
		{"case-sensitive", "agent1@example.com", "firstName=desk", ""},
		{"exact name", "agent1@example.com", "firstName=Desk", "desk1,desk2"},
		{"/i", "agent1@example.com", "firstName=desk/i", "desk1,desk2"},
		{"/i folds non-ASCII", "agent1@example.com", "lastName=" + url.QueryEscape("MÜLLER/i"), "agent1"},
		{"Latin-1 name without /i", "agent1@example.com", "lastName=" + url.QueryEscape("müller"), ""},
		{"wildcard and /i", "agent1@example.com", "firstName=A*/i", "agent1,anne"},
		{"wildcard is case-sensitive", "agent1@example.com", "firstName=A*", "agent1"},
		{"contains", "agent1@example.com", "firstName=*n*", "agent1,anne,g2a,plain"},
		{"runs of stars", "agent1@example.com", "firstName=**n**a", "agent1,g2a"},
		{"no name never matches", "agent1@example.com", "lastName=*", "agent1,agent2,anne,desk1,desk2,g2a,plain"},
		{"groupId", "agent1@example.com", "groupId=grp2", "anne,g2a,g2desk"},
		{"userId", "agent1@example.com", "userId=desk*", "desk1,desk2"},
		{"userId /i", "agent1@example.com", "userId=DESK1@EXAMPLE.COM/i", "desk1"},
		{"AND", "agent1@example.com", "firstName=Desk&lastName=Two", "desk2"},
		{"AND explicit", "agent1@example.com", "firstName=Desk&lastName=Two&searchCriteriaModeOr=false", "desk2"},
		{"OR", "agent1@example.com", "firstName=Desk&lastName=Two&searchCriteriaModeOr=true", "desk1,desk2,g2a"},
		{"OR of number and extension", "agent1@example.com", "number=2025550101&extension=01&searchCriteriaModeOr=true", "agent1,anne"},
		{"AND none", "agent1@example.com", "number=2025550101&extension=01", ""},
		{"another enterprise", "e2a@example.org", "", "e2a,e2b,e2c"},
		{"another enterprise's number", "e2a@example.org", "number=2025550101", "e2c"},
		{"group IDs are per enterprise", "e2a@example.org", "groupId=grp1", "e2a,e2c"},
	} {
		got := h.enterpriseDir(tc.user, tc.query)
		n := strings.Count(tc.want, ",") + 1
		if tc.want == "" {
			n = 0
		}
		want := enterprisePage{tc.want, "1", fmt.Sprint(n), fmt.Sprint(n)}
		if got != want {
			t.Errorf("%s (%s by %s): %+v, want %+v", tc.name, tc.query, tc.user, got, want)
		}
	}
}

// TestEnterpriseDirectoryDetails proves an entry carries the user's
// details in the XSD's element order (the harness validates every
// document with xmllint as well), that the directory name is
// case-insensitive, and that the Profile shows the same number and
// extension.
func TestEnterpriseDirectoryDetails(t *testing.T) {
	h := newHarness(t, entDirConfig())
	for _, dir := range []string{"Enterprise", "enterprise", "ENTERPRISE"} {
		r := parse(t, h.mustStatus(200, "GET", ActionsPrefix+"/user/plain@example.com/directories/"+dir+"?number=2025550101", ""))
		d := r.FindElement("enterpriseDirectory/directoryDetails")
		if d == nil {
			t.Fatalf("%s: no directoryDetails", dir)
		}
		var got []string
		for _, c := range d.ChildElements() {
			got = append(got, c.Tag+"="+c.Text())
		}
		want := "userId=agent1@example.com firstName=Anna lastName=Müller groupId=grp1 serviceProvider=ent1 number=2025550101 extension=0101"
		if strings.Join(got, " ") != want {
			t.Errorf("%s: directoryDetails %v, want %s", dir, got, want)
		}
	}
	p := parse(t, h.mustStatus(200, "GET", ActionsPrefix+"/user/anne@example.com/profile", ""))
	if text(p, "details/number") != "20255501" || text(p, "details/extension") != "01" {
		t.Errorf("profile of anne: number %q, extension %q", text(p, "details/number"), text(p, "details/extension"))
	}
}

// TestEnterpriseDirectoryPaging proves start and results: pages of the
// sorted answer, startIndex / numberOfRecords / totalAvailableRecords as
// the XSD describes them, a start past the end answering no entries, and
// results bounded by 1,000 (also the default); and that users added while
// running are found at once.
func TestEnterpriseDirectoryPaging(t *testing.T) {
	h := newHarness(t, entDirConfig())
	for _, tc := range []struct {
		query string
		want  enterprisePage
	}{
		{"start=1&results=3", enterprisePage{"agent1,agent2,anne", "1", "3", "8"}},
		{"start=4&results=3", enterprisePage{"desk1,desk2,g2a", "4", "3", "8"}},
		{"start=7&results=3", enterprisePage{"g2desk,plain", "7", "2", "8"}},
		{"start=8", enterprisePage{"plain", "8", "1", "8"}},
		{"start=9", enterprisePage{"", "9", "0", "8"}},
		{"start=2147483647&results=1000", enterprisePage{"", "2147483647", "0", "8"}},
		{"results=1", enterprisePage{"agent1", "1", "1", "8"}},
		{"firstName=Desk&start=2&results=1", enterprisePage{"desk2", "2", "1", "2"}},
	} {
		if got := h.enterpriseDir("agent1@example.com", tc.query); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.query, got, tc.want)
		}
	}

	more := make([]User, 1200)
	for i := range more {
		more[i] = User{ID: fmt.Sprintf("x%04d@example.com", i), GroupID: "grp3", Extension: fmt.Sprintf("%04d", i)}
	}
	if err := h.s.AddUsers(more...); err != nil {
		t.Fatal(err)
	}
	count := func(p enterprisePage) int { return len(strings.Split(p.ids, ",")) }
	for _, tc := range []struct {
		query                 string
		records, total, first string
	}{
		{"", "1000", "1208", "agent1"},
		{"results=5000", "1000", "1208", "agent1"},
		{"start=1001&results=1000", "208", "1208", "x0992"},
		{"extension=1199", "1", "1", "x1199"},
		{"groupId=grp3&start=1200", "1", "1200", "x1199"},
	} {
		got := h.enterpriseDir("plain@example.com", tc.query)
		first, _, _ := strings.Cut(got.ids, ",")
		if got.records != tc.records || got.total != tc.total || first != tc.first || fmt.Sprint(count(got)) != got.records {
			t.Errorf("%q: %d entries from %s, numberOfRecords %s, totalAvailableRecords %s; want %s from %s of %s",
				tc.query, count(got), first, got.records, got.total, tc.records, tc.first, tc.total)
		}
	}
}

// TestEnterpriseDirectoryErrors proves the refusals: a malformed start,
// results, searchCriteriaModeOr or search value (400, errorCode 4001), a
// repeated or unsupported parameter or a malformed query string (400,
// 4000), an unknown requesting user (404, 4008), one outside the
// credential's enterprises (403, 4030), and an unknown directory (404).
func TestEnterpriseDirectoryErrors(t *testing.T) {
	cfg := entDirConfig()
	cfg.AdminEnterprises = []string{"ent1"}
	h := newHarness(t, cfg)
	for _, tc := range []struct {
		user, dir, query string
		status           int
		code, mention    string
	}{
		{"agent1@example.com", "Enterprise", "start=0", 400, "4001", "start"},
		{"agent1@example.com", "Enterprise", "start=-1", 400, "4001", "start"},
		{"agent1@example.com", "Enterprise", "start=abc", 400, "4001", "start"},
		{"agent1@example.com", "Enterprise", "start=", 400, "4001", "start"},
		{"agent1@example.com", "Enterprise", "start=2147483648", 400, "4001", "start"},
		{"agent1@example.com", "Enterprise", "start=1.5", 400, "4001", "start"},
		{"agent1@example.com", "Enterprise", "results=0", 400, "4001", "results"},
		{"agent1@example.com", "Enterprise", "results=ten", 400, "4001", "results"},
		{"agent1@example.com", "Enterprise", "results=99999999999999999999", 400, "4001", "results"},
		{"agent1@example.com", "Enterprise", "searchCriteriaModeOr=yes", 400, "4001", "searchCriteriaModeOr"},
		{"agent1@example.com", "Enterprise", "number=", 400, "4001", "number"},
		{"agent1@example.com", "Enterprise", "lastName=/i", 400, "4001", "lastName"},
		{"agent1@example.com", "Enterprise", "firstName=" + strings.Repeat("a", 257), 400, "4001", "firstName"},
		{"agent1@example.com", "Enterprise", "number=1&number=2", 400, "4000", "number"},
		{"agent1@example.com", "Enterprise", "start=1&start=2", 400, "4000", "start"},
		{"agent1@example.com", "Enterprise", "emailAddress=a@example.com", 400, "4000", "emailAddress"},
		{"agent1@example.com", "Enterprise", "Number=1", 400, "4000", "Number"},
		{"agent1@example.com", "Enterprise", "number=%zz", 400, "4000", "query"},
		{"ghost@example.com", "Enterprise", "", 404, "4008", "ghost@example.com"},
		{"e2a@example.org", "Enterprise", "", 403, "4030", "e2a@example.org"},
		{"agent1@example.com", "Group", "", 404, "4004", "Group"},
	} {
		path := ActionsPrefix + "/user/" + tc.user + "/directories/" + tc.dir + "?" + tc.query
		st, b, _ := h.req("GET", path, "")
		if st != tc.status || errorCode(t, b) != tc.code || !strings.Contains(string(b), tc.mention) {
			t.Errorf("%s %s: %d %s, want %d with errorCode %s naming %s", tc.user, tc.query, st, b, tc.status, tc.code, tc.mention)
		}
	}
}

// TestEnterpriseDirectoryWhileAdding proves a search reads an enterprise
// that grows at the same time safely (the race detector checks the search
// done without the server lock): every answer is a consistent prefix.
func TestEnterpriseDirectoryWhileAdding(t *testing.T) {
	h := newHarness(t, baseConfig())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 50 {
			if err := h.s.AddUsers(User{ID: fmt.Sprintf("n%03d@example.com", i), Extension: fmt.Sprintf("%03d", i)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	last := 0
	for range 20 {
		got := h.enterpriseDir("plain@example.com", "userId=n*")
		var n int
		fmt.Sscan(got.total, &n)
		var want []string
		for i := range n {
			want = append(want, fmt.Sprintf("n%03d", i))
		}
		if n < last || got.records != got.total || got.ids != strings.Join(want, ",") {
			t.Errorf("after %d found, %+v", last, got)
		}
		last = n
	}
	wg.Wait()
	if got := h.enterpriseDir("plain@example.com", "userId=n*&start=50"); got.ids != "n049" || got.total != "50" {
		t.Errorf("after adding 50: %+v", got)
	}
}

// BenchmarkEnterpriseDirectory100k measures a search of an enterprise of
// 100,000 users: one pass over them (and a sort of those found) per
// request.
func BenchmarkEnterpriseDirectory100k(b *testing.B) {
	s := New(Config{Users: scaleUsers(100_000)}, nil)
	defer shutdown(b, s)
	h := s.Handler()
	for _, query := range []string{"extension=04242", "lastName=42*", "results=1000"} {
		b.Run(query, func(b *testing.B) {
			for b.Loop() {
				r := httptest.NewRequest(http.MethodGet, ActionsPrefix+"/user/user000001@example.com/directories/Enterprise?"+query, nil)
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
