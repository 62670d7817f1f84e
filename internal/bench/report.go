package bench

import (
	"fmt"
	"io"
	"text/tabwriter"
)

// Targets of issue 7 (on a 2-core machine).
const (
	targetXIdeal     = 1.15
	targetStormN     = 10000
	targetChurnRate  = 2000
	targetCTIP99MS   = 10
	targetNotifyP99  = 20
	targetRSSBytes   = 1 << 30
	targetSoakGrowth = 5 // % over the soak, by the least-squares line
)

// Row is one line of the table.
type Row struct {
	Name, Value, Target, Met string
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

// Rows are the table's lines.
func (r *Result) Rows() []Row {
	if r.Directory != nil {
		return r.Directory.rows()
	}
	var rows []Row
	add := func(name, value, target, met string) { rows = append(rows, Row{name, value, target, met}) }
	st := r.Storm
	n := fmt.Sprintf("N=%d", st.N)
	metStorm := yesNo(st.XIdeal <= targetXIdeal && st.Failed == 0)
	if st.N < targetStormN {
		metStorm += fmt.Sprintf(" (target is for N=%d)", targetStormN)
	}
	add("login storm: measured / ideal", fmt.Sprintf("%.2f × (%s: %.0f ms / ideal %.0f ms = N×3×%s/%d)", st.XIdeal, n, st.WallMS, st.IdealMS, r.Config.Latency, r.Config.MaxInFlight),
		fmt.Sprintf("≤ %.2f × at N=%d", targetXIdeal, targetStormN), metStorm)
	add("login storm: login latency p50 / p99", fmt.Sprintf("%.0f / %.0f ms (max %.0f)", st.Latency.P50, st.Latency.P99, st.Latency.Max), "", "")
	add("login storm: failed logins", fmt.Sprintf("%d", st.Failed), "0", yesNo(st.Failed == 0))
	add("login storm: Xsi-Actions requests", fmt.Sprintf("%.0f PUT + %.0f GET (%.2f GET per login: first references); all through C: ideal %.0f ms, measured / that %.2f ×",
		st.PUTs, st.GETs, st.GETs/float64(max(1, st.N)), st.IdealAllMS, st.WallMS/max(st.IdealAllMS, 1e-9)), "", "")
	add("login storm: store commits", fmt.Sprintf("%.0f (%.2f per login; each a disk sync shared by the writes waiting on it)", st.StoreCommits, st.StoreCommits/float64(max(1, st.N))), "", "")

	c := r.Churn
	rateMet := yesNo(c.Rate >= 0.98*r.Config.ChurnRate && c.CTILost == 0 && c.PortalErrs == 0)
	if r.Config.ChurnRate < targetChurnRate {
		rateMet += fmt.Sprintf(" (target is %d/s)", targetChurnRate)
	}
	add("state churn: changes/s held", fmt.Sprintf("%.0f/s (%d changes, driver late by ≤ %.0f ms, %d portal errors)", c.Rate, c.Changes, c.LagMaxMS, c.PortalErrs),
		fmt.Sprintf("%d/s", targetChurnRate), rateMet)
	add("state churn: XSI event → CTI monitor", fmt.Sprintf("p50 %.2f / p99 %.2f / max %.1f ms (%d events, %d lost)", c.CTI.P50, c.CTI.P99, c.CTI.Max, c.CTI.N, c.CTILost),
		fmt.Sprintf("p99 < %d ms", targetCTIP99MS), yesNo(c.CTI.N > 0 && c.CTI.P99 < targetCTIP99MS && c.CTILost == 0))
	if r.Config.GoPhones > 0 {
		add("state churn: XSI event → phone NOTIFY", fmt.Sprintf("p50 %.2f / p99 %.2f / max %.1f ms (%d NOTIFYs to %d Go phones, %d lost)", c.Notify.P50, c.Notify.P99, c.Notify.Max, c.Notify.N, r.Config.GoPhones, c.NotifyLost),
			fmt.Sprintf("p99 < %d ms", targetNotifyP99), yesNo(c.Notify.N > 0 && c.Notify.P99 < targetNotifyP99 && c.NotifyLost == 0))
	}
	if f := r.Fanout; f.Monitors > 0 {
		add(fmt.Sprintf("fan-out: one change seen by K=%d monitors", f.Monitors),
			fmt.Sprintf("every monitor: p50 %.2f / p99 %.2f ms; last of K: p50 %.2f / max %.2f ms (%d changes, %d missed)", f.All.P50, f.All.P99, f.Last.P50, f.Last.Max, f.Changes, f.Missing),
			"", "")
	}
	fp := r.Footprint
	add("footprint: per 1,000 directory users (agents + desks, idle)", fmt.Sprintf("%s RSS (heap in use %s), %.1f goroutines (%d users; baseline %s, %d goroutines)", mib(fp.PerUsers.RSS), mib(fp.PerUsers.HeapInuse), fp.PerUsers.Goroutines, fp.PerUsers.Count, mib(float64(fp.Baseline.RSS)), fp.Baseline.Goroutines), "", "")
	add("footprint: per 1,000 CTI sessions (session + monitor)", fmt.Sprintf("%s RSS (heap in use %s), %.0f goroutines (%d sessions)", mib(fp.PerCTI.RSS), mib(fp.PerCTI.HeapInuse), fp.PerCTI.Goroutines, fp.PerCTI.Count), "", "")
	if fp.PerPhones.Count > 0 {
		add("footprint: per 1,000 phones (subscribed)", fmt.Sprintf("%s RSS (heap in use %s), %.1f goroutines (%d phones)", mib(fp.PerPhones.RSS), mib(fp.PerPhones.HeapInuse), fp.PerPhones.Goroutines, fp.PerPhones.Count), "", "")
	}
	stage := func(f Footprint) string {
		return fmt.Sprintf("%s/%s/%d", mib(float64(f.RSS)), mib(float64(f.HeapInuse)), f.Goroutines)
	}
	add("footprint: RSS/heap in use/goroutines by stage", fmt.Sprintf("idle %s → +CTI %s → +phones %s → end %s", stage(fp.Idle), stage(fp.WithCTI), stage(fp.WithPhones), stage(fp.End)), "", "")
	add("footprint: at the end", fmt.Sprintf("RSS %s, peak (VmHWM) %s, %d goroutines, %d threads", mib(float64(fp.End.RSS)), mib(float64(fp.End.HWM)), fp.End.Goroutines, fp.End.Threads), "", "")
	how := "projected from the rows above"
	if fp.TargetMeasured {
		how = "measured peak"
	}
	add("footprint: 100,000 agents + 10,000 phones", fmt.Sprintf("%s (%s)", mib(fp.Target), how), "< 1 GiB RSS", yesNo(fp.Target > 0 && fp.Target < targetRSSBytes))
	add("CPU per login (connector)", fmt.Sprintf("%.2f ms (storm: %s)", st.CPUPerLogin, st.CPU), "", "")
	add("CPU per state change (connector)", fmt.Sprintf("%.0f µs (churn: %s)", c.CPUPerEvent, c.CPU), "", "")
	if r.Config.Soak != "0s" {
		add("soak: RSS slope", fmt.Sprintf("%.1f MiB/h = %.1f %% over %s (%d samples)", r.Soak.SlopeMBPerH, r.Soak.GrowthPct, r.Config.Soak, len(r.Soak.Samples)),
			fmt.Sprintf("flat (< %d %%)", targetSoakGrowth), yesNo(len(r.Soak.Samples) >= 2 && r.Soak.GrowthPct < targetSoakGrowth))
	}
	if r.Sipp != "" {
		add("sipp phones", r.Sipp, "", "")
	}
	return rows
}

// String is a phase's CPU in one line.
func (p PhaseCPU) String() string {
	return fmt.Sprintf("%.1f s; connector %.2f cores, bench %.2f, sipp %.2f, machine %.0f %% busy",
		p.Seconds, p.Connector/p.Seconds, p.Bench/p.Seconds, p.Sipp/p.Seconds, p.MachineBusy*100)
}

// Table writes the plain-text table with a header naming the run.
func (r *Result) Table(w io.Writer) error {
	c := r.Config
	if r.Directory != nil {
		r.Directory.table(r, w)
		return r.writeRows(w)
	}
	fmt.Fprintf(w, "connector-bench: %d agents logged in at %d of %d desks (%d agents configured), %d CTI sessions (%d agents each) + %d monitors of desk 1, %d phones (%d Go, %d sipp), churn %.0f/s for %s, L = %s, C = %d\n",
		c.Agents, c.Agents, c.Desks, c.Configured, c.Sessions, c.AgentsPerSession, c.Monitors, c.Phones, c.GoPhones, c.SippPhones, c.ChurnRate, c.ChurnDuration, c.Latency, c.MaxInFlight)
	fmt.Fprintf(w, "store: %s; directory: %s; machine: %d CPUs, %s, load average %s at start, %s at end; connector pinned to CPUs %q, load on CPUs %q; ready %.1f s (/readyz 200 at %.1f s), settled %.1f s after start (baseline %.1f s)\n\n",
		c.Store, c.Directory, r.Machine.CPUs, r.Machine.GoVersion, r.Machine.LoadAvg, r.Machine.LoadAfter, c.Pin, r.Machine.LoadCPUs, r.StartUp.Full, r.StartUp.Readyz, r.StartUp.Settled, r.StartUp.Baseline)
	if err := r.writeRows(w); err != nil {
		return err
	}
	d := r.Diag
	fmt.Fprintf(w, "\nXSI events at the connector: %.0f received, %.0f duplicates, %.0f sequence gaps, %.0f out of order; %d XSPs\n",
		r.Events["received"], r.Events["duplicates"], r.Events["sequence_gaps"], r.Events["out_of_order"], c.XSPs)
	fmt.Fprintf(w, "simulator: %d events sent, %d acknowledged, %d dropped; connector: %d warning/error log lines, %d CTI connections ended by it during the churn; events matching no change: %d CTI, %d NOTIFY\n",
		d.Sim.EventsSent, d.Sim.EventsAcked, d.Sim.EventsDropped, d.Warnings, d.CTIEnded, d.Unmatched[seenCTI], d.Unmatched[seenNotify])
	for _, l := range d.WarningLines {
		fmt.Fprintf(w, "  %s\n", l)
	}
	for _, l := range d.Lost {
		fmt.Fprintf(w, "  not seen: %s\n", l)
	}
	if r.CTIDropped > 0 {
		fmt.Fprintf(w, "\nwarning: the bench's CTI clients dropped %d events (their buffers were full): latencies may be missing some\n", r.CTIDropped)
	}
	return nil
}

func (r *Result) writeRows(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\tvalue\ttarget\tmet?")
	fmt.Fprintln(tw, "---\t-----\t------\t----")
	for _, row := range r.Rows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", row.Name, row.Value, row.Target, row.Met)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Directory != nil {
		for _, l := range r.Directory.Examples {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	return nil
}
