package xspsim

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// scaleUsers are n users in groups of 1,000 (grp0, grp1, ...), every
// second one an agent, every tenth a hoteling host: a contact center.
func scaleUsers(n int) []User {
	users := make([]User, n)
	for i := range users {
		users[i] = User{
			ID: fmt.Sprintf("user%06d@example.com", i), FirstName: "User", LastName: fmt.Sprint(i),
			GroupID: fmt.Sprintf("grp%d", i/1000), CallCenter: i%2 == 0, HotelingHost: i%10 == 0,
			Extension: fmt.Sprintf("%05d", i),
		}
	}
	return users
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestScale100kUsers starts a simulator with 100,000 users and serves a
// group subscription and an event through it over sockets. It logs the
// start-up time and heap per user (reported, not asserted: timing depends
// on the machine) and guards the heap per user against regressions.
func TestScale100kUsers(t *testing.T) {
	if testing.Short() {
		t.Skip("scale")
	}
	const n = 100_000
	users := scaleUsers(n)
	cfg := baseConfig()
	cfg.Users = users
	before := liveHeap()
	start := time.Now()
	h := newHarness(t, cfg)
	took := time.Since(start)
	perUser := float64(liveHeap()-before) / n
	t.Logf("New+Start with %d users: %v, %.0f bytes of heap per user", n, took, perUser)
	if perUser > 400 {
		t.Errorf("%.0f bytes of heap per user, want at most 400", perUser)
	}

	ch := h.openChannel("set-s", "csta-gw")
	sub := h.subscribe("enterprise/ent1/group/grp42", "set-s", PkgDoNotDisturb, PkgCallCenterAgent)
	if err := h.s.PortalSetDND("user042123@example.com", true); err != nil {
		t.Fatal(err)
	}
	d := ch.next("SubscriptionEvent:DoNotDisturbEvent")
	if text(d.root, "subscriptionId") != sub || text(d.root, "targetId") != "user042123@example.com" {
		t.Errorf("%s", d.raw)
	}
	ch.ack(d)
	runtime.KeepAlive(users)
}

// BenchmarkNew100kUsers measures building a simulator of 100,000 users.
func BenchmarkNew100kUsers(b *testing.B) {
	const n = 100_000
	users := scaleUsers(n)
	before := liveHeap()
	var s *Server
	for i := 0; i < b.N; i++ {
		if s != nil {
			shutdown(b, s)
		}
		s = New(Config{Users: users}, nil)
	}
	b.StopTimer()
	b.ReportMetric(float64(liveHeap()-before)/n, "heapB/user")
	shutdown(b, s)
}

// BenchmarkGroupSubscribe measures creating a group subscription in a
// group of 10 users and in one of 100,000: the same work (no walk over the
// members).
func BenchmarkGroupSubscribe(b *testing.B) {
	for _, n := range []int{10, 100_000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			users := make([]User, n)
			for i := range users {
				users[i] = User{ID: fmt.Sprintf("u%06d@example.com", i), CallCenter: true}
			}
			s := New(Config{Users: users}, nil)
			defer shutdown(b, s)
			h := s.Handler()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				body := body("Subscription", fmt.Sprintf("<eventPackageList><event>Call Center Agent</event><event>Do Not Disturb</event></eventPackageList><channelSetId>set%d</channelSetId>", i))
				r := httptest.NewRequest(http.MethodPost, EventsPrefix+"/enterprise/ent1/group/grp1", strings.NewReader(body))
				w := httptest.NewRecorder()
				h.ServeHTTP(w, r)
				if w.Code != 200 {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
