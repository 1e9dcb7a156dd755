package controllers

import (
	"sort"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// Operator metrics, served on the manager's metrics endpoint beside
// controller-runtime's own (reconcile totals and errors per controller).
// docs/metrics.md lists each of them; metrics_test.go checks that the list,
// the names (promlint) and the types agree with this file.
var (
	notificationFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "licenseha_notification_failures_total",
		Help: "Notifications (webhook, e-mail) that could not be sent.",
	}, []string{"channel"})

	groupMembersInQuorum = gaugeVec("licenseha_triad_members_in_quorum", "Members of a triad that are up and in contact.", "namespace", "name")

	groupFailovers = newStatusCounter("licenseha_failovers_total",
		"Takeovers since the group was created (from the Lease's fencing epoch, status.failovers).",
		"namespace", "name", "kind")

	memberRole = gaugeVec("licenseha_member_active", "1 for the member that serves, 0 for the others.", "namespace", "name", "member")

	licenseExpiry = gaugeVec("licenseha_license_expiry_timestamp_seconds", "When a licence of a group stops being valid, as Unix seconds.", "namespace", "name", "license")

	groupSynchronized = gaugeVec("licenseha_group_synchronized", "1 when every member of a group holds the latest synced state, 0 otherwise.", "namespace", "name", "kind")

	groupServing = gaugeVec("licenseha_group_serving", "1 when a member of the group serves clients (triad: the Lease holder reports active; pair: either server serves), 0 otherwise.", "namespace", "name", "kind")

	groupPhase = gaugeVec("licenseha_group_phase", "1 for the group's current phase (status.phase), 0 for the kind's other phases.", "namespace", "name", "kind", "phase")

	pairConnected = gaugeVec("licenseha_pair_connected", "1 when a backup pair's main and backup reach each other, 0 otherwise.", "namespace", "name")

	// operatorCollectors are the collectors above, registered with the
	// manager's registry.
	operatorCollectors = []prometheus.Collector{notificationFailures, groupMembersInQuorum, groupFailovers, memberRole,
		licenseExpiry, groupSynchronized, groupServing, groupPhase, pairConnected}

	// groupGauges hold one series set per group, removed with the group.
	groupGauges = []*prometheus.GaugeVec{groupMembersInQuorum, memberRole, licenseExpiry, groupSynchronized,
		groupServing, groupPhase, pairConnected}

	triadPhases = []licensehav1.TriadPhase{licensehav1.TriadForming, licensehav1.TriadActive, licensehav1.TriadDegraded,
		licensehav1.TriadNoQuorum, licensehav1.TriadFailed}
	pairPhases = []licensehav1.PairPhase{licensehav1.PairForming, licensehav1.PairActive, licensehav1.PairDegraded,
		licensehav1.PairFailed}
)

func init() {
	metrics.Registry.MustRegister(operatorCollectors...)
}

// gaugeVec is a gauge with a series per value of labels.
func gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
}

// statusCounter is a counter whose value the operator copies from a group's
// status instead of counting events itself: the count survives operator
// restarts and leader changes, and only grows while the group exists (a
// group created again under the same name starts at 0, which Prometheus
// treats as a counter reset). It is exposed with the counter type so that
// rate() and increase() apply.
type statusCounter struct {
	desc   *prometheus.Desc
	mu     sync.Mutex
	values map[[3]string]float64
}

func newStatusCounter(name, help string, labels ...string) *statusCounter {
	if len(labels) != 3 {
		panic("statusCounter takes three labels")
	}
	return &statusCounter{desc: prometheus.NewDesc(name, help, labels, nil), values: map[[3]string]float64{}}
}

func (c *statusCounter) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *statusCounter) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	keys := make([][3]string, 0, len(c.values))
	for k := range c.values {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return keys[i][0]+"/"+keys[i][1]+"/"+keys[i][2] < keys[j][0]+"/"+keys[j][1]+"/"+keys[j][2]
	})
	for _, k := range keys {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.CounterValue, c.values[k], k[0], k[1], k[2])
	}
}

func (c *statusCounter) set(namespace, name, kind string, v float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.values[[3]string{namespace, name, kind}] = v
}

// forget removes every series of the group namespace/name.
func (c *statusCounter) forget(namespace, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.values {
		if k[0] == namespace && k[1] == name {
			delete(c.values, k)
		}
	}
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

// observePhase sets 1 for the current phase and 0 for the kind's others.
func observePhase[P ~string](namespace, name, kind string, current P, all []P) {
	for _, p := range all {
		groupPhase.WithLabelValues(namespace, name, kind, string(p)).Set(boolGauge(p == current))
	}
}

// forgetGroup removes a deleted group's series, so alerts never fire for a
// group that no longer exists.
func forgetGroup(namespace, name string) {
	labels := prometheus.Labels{"namespace": namespace, "name": name}
	for _, v := range groupGauges {
		v.DeletePartialMatch(labels)
	}
	groupFailovers.forget(namespace, name)
}

// groupSeries is what both kinds export of a group's status.
type groupSeries[P ~string] struct {
	namespace, name, kind string
	failovers             int32
	synchronized, serving bool
	// phase is the current one of the kind's phases.
	phase    P
	phases   []P
	licenses [][]licensehav1.LicenseStatus
}

// observe sets the group's series of the metrics both kinds have.
func (s groupSeries[P]) observe() {
	groupFailovers.set(s.namespace, s.name, s.kind, float64(s.failovers))
	groupSynchronized.WithLabelValues(s.namespace, s.name, s.kind).Set(boolGauge(s.synchronized))
	groupServing.WithLabelValues(s.namespace, s.name, s.kind).Set(boolGauge(s.serving))
	observePhase(s.namespace, s.name, s.kind, s.phase, s.phases)
	observeLicences(s.namespace, s.name, s.licenses...)
}

// observePairMetrics exports a backup pair's status as gauges.
func observePairMetrics(p *licensehav1.LicenseBackupPair) {
	groupSeries[licensehav1.PairPhase]{namespace: p.Namespace, name: p.Name, kind: group.KindBackupPair,
		failovers: p.Status.Failovers, synchronized: p.Status.Synchronized, serving: p.Status.Main.Serving || p.Status.Backup.Serving,
		phase: p.Status.Phase, phases: pairPhases,
		licenses: [][]licensehav1.LicenseStatus{p.Status.Main.Licenses, p.Status.Backup.Licenses}}.observe()
	pairConnected.WithLabelValues(p.Namespace, p.Name).Set(boolGauge(p.Status.Connected))
}

// observeTriadMetrics exports a triad's status as gauges.
func observeTriadMetrics(t *licensehav1.LicenseTriad) {
	groupMembersInQuorum.WithLabelValues(t.Namespace, t.Name).Set(float64(t.Status.MembersInQuorum))
	groupSeries[licensehav1.TriadPhase]{namespace: t.Namespace, name: t.Name, kind: group.KindTriad,
		failovers: t.Status.Failovers, synchronized: t.Status.Sync.Synchronized, serving: t.Status.ActiveMember != "",
		phase: t.Status.Phase, phases: triadPhases,
		licenses: [][]licensehav1.LicenseStatus{t.Status.Licenses}}.observe()
	for _, m := range t.Spec.Members {
		memberRole.WithLabelValues(t.Namespace, t.Name, m.Name).Set(boolGauge(m.Name == t.Status.ActiveMember))
	}
}
