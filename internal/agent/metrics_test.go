package agent

import (
	"regexp"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/licenseha/licenseha/internal/metricsdoc"
)

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// declaredNames lists the metric names the collectors declare, series or not.
func declaredNames(cs []prometheus.Collector) map[string]bool {
	out := map[string]bool{}
	for _, c := range cs {
		ch := make(chan *prometheus.Desc, 16)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			if m := fqName.FindStringSubmatch(d.String()); m != nil {
				out[m[1]] = true
			}
		}
	}
	return out
}

// TestAgentMetrics: every metric the agent serves passes promlint and is
// documented in docs/metrics.md with its type, and the document lists no
// agent metric the agent does not serve.
func TestAgentMetrics(t *testing.T) {
	m := newAgentMetrics()
	// Give every metric a series, as a running agent does.
	m.setRole("active")
	m.epoch.Set(3)
	m.takeover.Set(1.2)
	m.revision.WithLabelValues("published").Set(7)
	m.syncAge.Set(2)
	m.inUse.WithLabelValues("lic-1").Set(3)
	m.capacity.WithLabelValues("lic-1").Set(10)
	m.observeRestarts(2)
	m.roleFailures.Inc()
	m.tokenHidden.Set(1)
	m.setUsage(map[string][3]int64{"lic-1": {4, 2, 40}})

	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	declared := declaredNames(m.collectors())
	if len(mfs) != len(declared) {
		t.Fatalf("gathered %d metric families, the collectors declare %d: give every metric a series above", len(mfs), len(declared))
	}
	doc, err := metricsdoc.Documented("../../docs/metrics.md", metricsdoc.Agent)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range metricsdoc.Check(mfs, doc) {
		t.Error(p)
	}
}

// TestServerRestartsCount: the restart counter follows the supervisor's
// count without counting a restart twice.
func TestServerRestartsCount(t *testing.T) {
	m := newAgentMetrics()
	for _, n := range []int{0, 1, 1, 3, 3} {
		m.observeRestarts(n)
	}
	mfs, _ := m.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "licenseha_agent_server_restarts_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 3 {
				t.Errorf("restarts %v, want 3", v)
			}
			return
		}
	}
	t.Error("licenseha_agent_server_restarts_total not gathered")
}
