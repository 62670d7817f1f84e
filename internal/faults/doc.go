// Package faults is the connector's fault campaign (issue 7): one table of
// faults, each run through the same harness against a whole connector in
// process (internal/stack: the XSP simulator with two XSPs, and the
// connector assembled by package connector as `connector run` assembles it:
// the XSI link, the gateway with its hot-desk sequencer, the journal, the
// CSTA front end, the admin server and phone sync), on loopback only.
//
// For each fault, CTI clients (csta/cticlient) drive A agents at A hot
// desks: a login storm, then churn (Ready, Not Ready with a reason, After
// Call Work, logouts and logins again, state queries), then some logouts,
// while K monitor clients watch every agent's device and every desk. The
// fault is injected at a chosen moment (mid-storm for the kills) and
// cleared after a while. Once the link is back and the connector's view
// has settled, the harness checks:
//
//   - every CTI request got exactly one answer (a success or a CSTA error),
//     counted by invoke ID on the wire (Tap); a request without an answer
//     is allowed only when its connection dropped, and then its outcome is
//     checked through the state instead;
//   - BroadWorks (the simulator) ends consistent for every agent: fully
//     logged in at its desk (association both ways, the desk forwarding to
//     the agent, the agent signed in) or fully logged out (no association,
//     the desk's own forwarding back, the agent signed out), and in the
//     state the last unambiguous answer promised;
//   - the last state each monitor saw for each device equals BroadWorks'
//     final state (a monitor whose connection the fault cut reconnects and
//     takes a fresh snapshot through CSTA queries);
//   - once the stack is closed, goroutines are back to their baseline and
//     the heap has not grown beyond a tolerance.
//
// Sizes and durations are small by default, so that the campaign fits CI
// (go test -race on two cores, a few minutes). The long mode, for manual
// runs, takes more agents, clients and monitors and holds every fault
// longer:
//
//	go test -race -run TestFaultCampaign -timeout 60m ./internal/faults/ -faults.long
//	FAULTS_LONG=1 go test -race -timeout 60m ./internal/faults/
//
// -run TestFaultCampaign/<fault> runs one fault; FAULTS_LOG=warn (or info,
// debug) logs the connector at that level.
//
// No bug is excused: every fault must leave every agent as its last answer
// promised. Faults skipped for a known bug (none at present) run with
// -faults.bugs. Before its checks the harness waits until no request given
// up on can still land (the gateway's DoubtWindow after the last failure)
// and until the reconciler has nothing left to do (Gateway.Settle). Two
// faults aim at the reconciler itself: repairs-racing-requests (repairs
// while the clients keep asking for the same agents) and
// connector-killed-during-repair (the XSPs die as they make an association,
// never answering it — xspsim KillAfter — so a login is left half done and
// its undo fails; the connector is killed once the reconciler has started
// repairing, and its successor finishes). After a connector restart the
// monitors are checked once they are connected to the new connector and
// reseeded.
//
// The long mode, on 2026-12-07: it passed whole on fd7536d and 095e70f,
// twice in a row on 0cf8b57, and then six times in a row: f10 on f7d43b7,
// f11 and f12 on 2100ab8 (the same connector, the harness's phone sweep
// added), f13 on df4a331, f14 on 7ef89d7 (store metrics, the desk journal
// range, the first-run token), f15 on 7232ab2 (issue 17's one-pass XSI and
// CSTA decoders, shared event frames, small sessions, promise saves ordered
// per user; no outside change taken, 505 repairs). One outside change was
// taken in the six
// (f14, latency-spikes-10s: agent 104 found Available 4 s after a Sign-Out
// it was promised, and the run still ended as every client was told), and
// one view that had gone back was put right by the read (f14,
// cti-clients-drop-mid-sequence, agent 111, 71 ms). Each
// failing run before failed in one of its 12 faults, on one agent or one
// phone (or a leak check); each cause was fixed, and each was a view that
// lagged BroadWorks, judged by the reconciler or a sequence:
//   - a failed logout's undo of the desk's forwarding that landed after the
//     next logout (the logout now promises the desk it left);
//   - doubts that ended while the users were still being read again after
//     a failover (held now while any are);
//   - an undo taken as confirmed because the view already showed its result
//     (now a doubt);
//   - an agent's Ready answered 200 whose view went back to the Not Ready
//     before it 2 s later (expiry-under-load), adopted as an outside change:
//     the reconciler now reads BroadWorks before it takes any difference for
//     an outside change, and logs when the read shows the promise.
//
// One run failed only its leak check, on the harness's own phones: sipgo
// answers each request from a goroutine of its own, and one still running
// when its phone closed opened a new socket, with a reader, after the phone's
// agent had cleared its pool. checkLeaks now clears closed phones' pools
// before counting (sweepClosedPhones).
//
// Deadlines only bound waiting (so that a broken connector fails instead of
// hanging); no test condition is a timing: latencies are benchmarks.
package faults
