package controllers

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// Operator metrics, served on the manager's metrics endpoint beside
// controller-runtime's own (reconcile totals and errors per controller).
var (
	notificationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "licenseha_notification_failures_total",
		Help: "Notifications (webhook, e-mail) that could not be sent.",
	}, []string{"channel"})

	groupMembersInQuorum = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "licenseha_triad_members_in_quorum",
		Help: "Members of a triad that are up and in contact.",
	}, []string{"namespace", "name"})

	groupFailovers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "licenseha_failovers_total",
		Help: "Takeovers since the group was created (from the Lease's fencing epoch).",
	}, []string{"namespace", "name", "kind"})

	memberRole = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "licenseha_member_active",
		Help: "1 for the member that serves, 0 for the others.",
	}, []string{"namespace", "name", "member"})
)

func init() {
	metrics.Registry.MustRegister(notificationFailures, groupMembersInQuorum, groupFailovers, memberRole)
}

// observeTriadMetrics exports a triad's status as gauges.
func observeTriadMetrics(t *licensehav1.LicenseTriad) {
	groupMembersInQuorum.WithLabelValues(t.Namespace, t.Name).Set(float64(t.Status.MembersInQuorum))
	groupFailovers.WithLabelValues(t.Namespace, t.Name, "LicenseTriad").Set(float64(t.Status.Failovers))
	for _, m := range t.Spec.Members {
		v := 0.0
		if m.Name == t.Status.ActiveMember {
			v = 1
		}
		memberRole.WithLabelValues(t.Namespace, t.Name, m.Name).Set(v)
	}
}
