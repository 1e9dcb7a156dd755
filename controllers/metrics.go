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

	groupMembersInQuorum = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "licenseha_triad_members_in_quorum",
		Help: "Members of a triad that are up and in contact.",
	}, []string{"namespace", "name"})

	groupFailovers = newStatusCounter("licenseha_failovers_total",
		"Takeovers since the group was created (from the Lease's fencing epoch, status.failovers).",
		"namespace", "name", "kind")

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

	groupServing = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "licenseha_group_serving",
		Help: "1 when a member of the group serves clients (triad: the Lease holder reports active; pair: either server serves), 0 otherwise.",
	}, []string{"namespace", "name", "kind"})

	groupPhase = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "licenseha_group_phase",
		Help: "1 for the group's current phase (status.phase), 0 for the kind's other phases.",
	}, []string{"namespace", "name", "kind", "phase"})

	pairConnected = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "licenseha_pair_connected",
		Help: "1 when a backup pair's main and backup reach each other, 0 otherwise.",
	}, []string{"namespace", "name"})

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

// observePairMetrics exports a backup pair's status as gauges.
func observePairMetrics(p *licensehav1.LicenseBackupPair) {
	const kind = group.KindBackupPair
	groupFailovers.set(p.Namespace, p.Name, kind, float64(p.Status.Failovers))
	groupSynchronized.WithLabelValues(p.Namespace, p.Name, kind).Set(boolGauge(p.Status.Synchronized))
	groupServing.WithLabelValues(p.Namespace, p.Name, kind).Set(boolGauge(p.Status.Main.Serving || p.Status.Backup.Serving))
	pairConnected.WithLabelValues(p.Namespace, p.Name).Set(boolGauge(p.Status.Connected))
	observePhase(p.Namespace, p.Name, kind, p.Status.Phase, pairPhases)
	observeLicences(p.Namespace, p.Name, p.Status.Main.Licenses, p.Status.Backup.Licenses)
}

// observeTriadMetrics exports a triad's status as gauges.
func observeTriadMetrics(t *licensehav1.LicenseTriad) {
	const kind = group.KindTriad
	groupMembersInQuorum.WithLabelValues(t.Namespace, t.Name).Set(float64(t.Status.MembersInQuorum))
	groupFailovers.set(t.Namespace, t.Name, kind, float64(t.Status.Failovers))
	groupSynchronized.WithLabelValues(t.Namespace, t.Name, kind).Set(boolGauge(t.Status.Sync.Synchronized))
	groupServing.WithLabelValues(t.Namespace, t.Name, kind).Set(boolGauge(t.Status.ActiveMember != ""))
	observePhase(t.Namespace, t.Name, kind, t.Status.Phase, triadPhases)
	observeLicences(t.Namespace, t.Name, t.Status.Licenses)
	for _, m := range t.Spec.Members {
		v := 0.0
		if m.Name == t.Status.ActiveMember {
			v = 1
		}
		memberRole.WithLabelValues(t.Namespace, t.Name, m.Name).Set(v)
	}
}
