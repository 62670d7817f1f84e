package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"
)

// The Go runtime's profiles (net/http/pprof) under /debug/pprof/, behind
// the admin token like every route but /healthz (issue 17: measure as
// operators would). They are mounted on the admin server's own mux, never
// on http.DefaultServeMux, which nothing in the connector serves.
//
//	GET /debug/pprof/                  the index (HTML)
//	GET /debug/pprof/{profile}         heap, allocs, goroutine, block, mutex, threadcreate (?debug=1 text, ?gc=1)
//	GET /debug/pprof/profile?seconds=N CPU profile, N ≤ maxProfileSeconds (default 30)
//	GET /debug/pprof/trace?seconds=N   execution trace, N ≤ maxProfileSeconds (default 1)
//	GET /debug/pprof/cmdline, /symbol

// maxProfileSeconds bounds the CPU profile and the trace: a request holds
// its connection for that long.
const maxProfileSeconds = 120

func pprofMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index) // the index, and each profile by name
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.Handle("/debug/pprof/profile", timedProfile(30, http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/trace", timedProfile(1, http.HandlerFunc(pprof.Trace)))
	return mux
}

// timedProfile lets a CPU profile or a trace run past the admin server's
// write timeout (30 s: `go tool pprof` asks for 30 s by default): the
// write deadline of this one response is moved to the end of the profile,
// plus time to send it. More than maxProfileSeconds is refused with 400.
// profilingServer is the server pprof's handlers are told they run in: one
// without a write timeout, as timedProfile set this response's deadline.
var profilingServer = &http.Server{}

func timedProfile(defaultSeconds int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seconds := defaultSeconds
		if v := r.FormValue("seconds"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 || n > maxProfileSeconds {
				http.Error(w, fmt.Sprintf("seconds must be a whole number from 1 to %d", maxProfileSeconds), http.StatusBadRequest)
				return
			}
			seconds = n
		}
		if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(seconds)*time.Second + 30*time.Second)); err != nil {
			http.Error(w, "cannot extend the write deadline: "+err.Error(), http.StatusInternalServerError)
			return
		}
		// pprof refuses a duration past the server's WriteTimeout, which
		// it reads from the request's context: the deadline is ours now.
		r = r.WithContext(context.WithValue(r.Context(), http.ServerContextKey, profilingServer))
		next.ServeHTTP(w, r)
	})
}
