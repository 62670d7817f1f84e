// Package promtest reads Prometheus collectors the way a scrape does, for
// tests: the collectors are registered in a pedantic registry (each metric
// checked against its description) and served as /metrics.
package promtest

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Scrape returns every sample of cs by its `name{labels}` as the
// exposition format spells it.
func Scrape(t testing.TB, cs ...prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(cs...)
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.PanicOnError}).
		ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out := map[string]float64{}
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("bad sample %q", line)
		}
		out[line[:i]] = v
	}
	return out
}

// WantSample reports a sample of got that is missing or has another value.
func WantSample(t testing.TB, got map[string]float64, name string, want float64) {
	t.Helper()
	if v, ok := got[name]; !ok || v != want {
		t.Errorf("%s = %v (present %t), want %v", name, v, ok, want)
	}
}

// WantSamples is WantSample for each of want.
func WantSamples(t testing.TB, got map[string]float64, want map[string]float64) {
	t.Helper()
	for name, w := range want {
		WantSample(t, got, name, w)
	}
}
