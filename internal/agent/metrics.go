package agent

import (
	"context"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/licenseha/licenseha/internal/group"
)

// agentMetrics are served on the agent's HTTP port at /metrics: what only a
// member itself knows, beside the operator's view of the whole group.
type agentMetrics struct {
	reg      *prometheus.Registry
	role     *prometheus.GaugeVec
	epoch    prometheus.Gauge
	takeover prometheus.Gauge
	revision *prometheus.GaugeVec
	syncAge  prometheus.Gauge
	inUse    *prometheus.GaugeVec
	capacity *prometheus.GaugeVec
	restarts prometheus.Counter
	// restartsSeen is the supervisor's restart count already added to
	// restarts.
	restartsSeen int
	roleFailures prometheus.Counter
	tokenHidden  prometheus.Gauge
	// usage holds the current month's usage totals per licence and kind
	// (checkouts, jobs, labels).
	usage *prometheus.GaugeVec
}

func newAgentMetrics() *agentMetrics {
	m := &agentMetrics{
		reg: prometheus.NewRegistry(),
		role: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "licenseha_agent_role",
			Help: "1 for this member's current role label (active, standby, witness, unhealthy)."}, []string{"role"}),
		epoch: prometheus.NewGauge(prometheus.GaugeOpts{Name: "licenseha_agent_epoch",
			Help: "Fencing epoch this member knows."}),
		takeover: prometheus.NewGauge(prometheus.GaugeOpts{Name: "licenseha_agent_last_takeover_seconds",
			Help: "How long this member's last takeover took, from the last heartbeat of a serving peer to serving itself."}),
		revision: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "licenseha_agent_sync_revision",
			Help: "Synced-state revision this member published (active) or applied (others)."}, []string{"direction"}),
		syncAge: prometheus.NewGauge(prometheus.GaugeOpts{Name: "licenseha_agent_sync_age_seconds",
			Help: "Seconds since this member last published or applied synced state."}),
		inUse: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "licenseha_license_checkouts_in_use",
			Help: "Printer seats in use per licence on this member's server."}, []string{"license"}),
		capacity: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "licenseha_license_capacity",
			Help: "Printer seats per licence on this member's server."}, []string{"license"}),
		restarts: prometheus.NewCounter(prometheus.CounterOpts{Name: "licenseha_agent_server_restarts_total",
			Help: "Times the agent restarted its license server."}),
		roleFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "licenseha_agent_role_change_failures_total",
			Help: "Role changes the license server did not accept."}),
		tokenHidden: prometheus.NewGauge(prometheus.GaugeOpts{Name: "licenseha_agent_server_token_hidden",
			Help: "1 when the license server runs unable to read the pod's service-account token (Landlock), 0 when it can read it."}),
		usage: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "licenseha_usage_month",
			Help: "Usage statistics of the current month (UTC) per licence: checkouts, printed jobs and labels, summed over printers. Exported by a triad's active member and by both servers of a pair."},
			[]string{"license", "kind"}),
	}
	m.reg.MustRegister(m.collectors()...)
	return m
}

// collectors are every metric the agent serves (docs/metrics.md lists them;
// metrics_test.go checks the list, the names and the types).
func (m *agentMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.role, m.epoch, m.takeover, m.revision, m.syncAge, m.inUse, m.capacity, m.restarts,
		m.roleFailures, m.tokenHidden, m.usage}
}

// observeRestarts adds the license server restarts the supervisor counted
// since the last call.
func (m *agentMetrics) observeRestarts(total int) {
	if total > m.restartsSeen {
		m.restarts.Add(float64(total - m.restartsSeen))
		m.restartsSeen = total
	}
}

func (m *agentMetrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// setUsage replaces the usage gauges with totals (licence → checkouts,
// jobs, labels).
func (m *agentMetrics) setUsage(totals map[string][3]int64) {
	m.usage.Reset()
	for lic, t := range totals {
		for i, kind := range []string{"checkouts", "jobs", "labels"} {
			m.usage.WithLabelValues(lic, kind).Set(float64(t[i]))
		}
	}
}

// resetUsage removes the usage gauges (a member whose statistics are not
// authoritative).
func (m *agentMetrics) resetUsage() { m.usage.Reset() }

// setRole marks the current role label.
func (m *agentMetrics) setRole(label string) {
	for _, r := range group.RoleLabels {
		v := 0.0
		if r == label {
			v = 1
		}
		m.role.WithLabelValues(r).Set(v)
	}
}

// collectLicences refreshes the seat gauges from the server, every few
// seconds, until ctx ends.
func (a *Agent) collectLicences(ctx context.Context) {
	every(ctx, 5*time.Second, func() {
		if lics, err := a.admin.Licenses(ctx); err == nil {
			for _, l := range lics {
				if l.Valid {
					a.metrics.inUse.WithLabelValues(l.ID).Set(float64(l.InUse))
					a.metrics.capacity.WithLabelValues(l.ID).Set(float64(l.Printers))
				}
			}
		}
		a.metrics.observeRestarts(a.procs.server.Status().Restarts)
	})
}
