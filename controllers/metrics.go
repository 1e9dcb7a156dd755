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

	licenseExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "licenseha_license_expiry_timestamp_seconds",
		Help: "When a licence of a group stops being valid, as Unix seconds.",
	}, []string{"namespace", "name", "license"})

	groupSynchronized = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "licenseha_group_synchronized",
		Help: "1 when every member of a group holds the latest synced state, 0 otherwise.",
	}, []string{"namespace", "name", "kind"})
)

func init() {
	metrics.Registry.MustRegister(notificationFailures, groupMembersInQuorum, groupFailovers, memberRole,
		licenseExpiry, groupSynchronized)
}

func boolGauge(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observeLicences exports the expiry of a group's licences.
func observeLicences(namespace, name string, lists ...[]licensehav1.LicenseStatus) {
	licenseExpiry.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
	for _, list := range lists {
		for _, l := range list {
			if l.Expires != nil {
				licenseExpiry.WithLabelValues(namespace, name, l.ID).Set(float64(l.Expires.Unix()))
			}
		}
	}
}

// forgetGroup removes a deleted group's series, so alerts never fire for a
// group that no longer exists.
func forgetGroup(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name}
	for _, v := range []*prometheus.GaugeVec{groupMembersInQuorum, groupFailovers, memberRole, licenseExpiry, groupSynchronized} {
		v.DeletePartialMatch(labels)
	}
}

// observePairMetrics exports a backup pair's status as gauges.
func observePairMetrics(p *licensehav1.LicenseBackupPair) {
	groupFailovers.WithLabelValues(p.Namespace, p.Name, "LicenseBackupPair").Set(float64(p.Status.Failovers))
	groupSynchronized.WithLabelValues(p.Namespace, p.Name, "LicenseBackupPair").Set(boolGauge(p.Status.Synchronized))
	observeLicences(p.Namespace, p.Name, p.Status.Main.Licenses, p.Status.Backup.Licenses)
}

// observeTriadMetrics exports a triad's status as gauges.
func observeTriadMetrics(t *licensehav1.LicenseTriad) {
	groupMembersInQuorum.WithLabelValues(t.Namespace, t.Name).Set(float64(t.Status.MembersInQuorum))
	groupFailovers.WithLabelValues(t.Namespace, t.Name, "LicenseTriad").Set(float64(t.Status.Failovers))
	groupSynchronized.WithLabelValues(t.Namespace, t.Name, "LicenseTriad").Set(boolGauge(t.Status.Sync.Synchronized))
	observeLicences(t.Namespace, t.Name, t.Status.Licenses)
	for _, m := range t.Spec.Members {
		v := 0.0
		if m.Name == t.Status.ActiveMember {
			v = 1
		}
		memberRole.WithLabelValues(t.Namespace, t.Name, m.Name).Set(v)
	}
}
