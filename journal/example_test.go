package journal_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/broadworks-connector/connector/journal"
)

// How the gateway and the admin API are meant to use the journal: record a
// hot-desk login before acknowledging it, its logout likewise, answer the
// reporting questions, and at start-up reconcile what is still open.
func Example() {
	dir, _ := os.MkdirTemp("", "journal")
	defer os.RemoveAll(dir)
	j, err := journal.Open(filepath.Join(dir, "associations.db"), journal.Options{Retention: 90 * 24 * time.Hour})
	if err != nil {
		log.Fatal(err)
	}
	defer j.Close()
	ctx := context.Background()
	login := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

	// Login confirmed by BroadWorks: journal it, then acknowledge to the CTI client.
	id, err := j.Begin(ctx, journal.Association{
		AgentID: "4001", AgentUserID: "agent4001@example.com",
		DeviceID: "desk-2-17", DeskUserID: "desk217@example.com",
		Start: login, Detail: "CSTA session 12",
	})
	if err != nil {
		log.Fatal(err)
	}
	// Start-up reconciliation: what the journal believes is still logged in.
	open, _ := j.OpenAssociations(ctx)
	fmt.Println("open:", len(open), open[0].ID == id)

	// A supervisor forces the logout at 12:00.
	if _, err := j.End(ctx, "agent4001@example.com", login.Add(4*time.Hour), journal.EndForced, "supervisor alice"); err != nil {
		log.Fatal(err)
	}

	// Reporting: who was at the desk at 10:30, where was the agent that day.
	a, ok, _ := j.AtDesk(ctx, "desk-2-17", login.Add(150*time.Minute))
	fmt.Println(ok, a.AgentID, a.EndedBy, a.Detail)
	day, _ := j.AgentBetween(ctx, "agent4001@example.com", login.Add(-8*time.Hour), login.Add(16*time.Hour))
	fmt.Println(len(day), day[0].DeviceID, day[0].Start.Format(time.Kitchen), day[0].End.Format(time.Kitchen))
	// Output:
	// open: 1 true
	// true 4001 forced supervisor alice
	// 1 desk-2-17 8:00AM 12:00PM
}
