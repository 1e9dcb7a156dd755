package controllers

import (
	"regexp"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/metricsdoc"
	"github.com/licenseha/licenseha/internal/testfixtures"
)

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func metricsTriad(ns string) *licensehav1.LicenseTriad {
	expires := metav1.NewTime(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	t := testfixtures.Triad(ns, "plant")
	t.Status = licensehav1.LicenseTriadStatus{Phase: licensehav1.TriadActive, ActiveMember: "a", MembersInQuorum: 3,
		GroupStatus: licensehav1.GroupStatus{Failovers: 2}, Licenses: []licensehav1.LicenseStatus{{ID: "lic-1", Expires: &expires}}}
	return t
}

// TestOperatorMetrics: every metric the operator adds to controller-runtime's
// registry passes promlint and is documented in docs/metrics.md with its
// type, and the document lists no operator metric the operator lacks.
func TestOperatorMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(operatorCollectors...)
	ns := "metrics-test"
	defer forgetGroup(ns, "plant")
	defer forgetGroup(ns, "pair")
	observeTriadMetrics(metricsTriad(ns))
	observePairMetrics(&licensehav1.LicenseBackupPair{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "pair"},
		Status: licensehav1.LicenseBackupPairStatus{Phase: licensehav1.PairActive, Connected: true, Synchronized: true}})
	notificationFailures.WithLabelValues("webhook").Add(0)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	declared := map[string]bool{}
	for _, c := range operatorCollectors {
		ch := make(chan *prometheus.Desc, 4)
		c.Describe(ch)
		close(ch)
		for d := range ch {
			declared[fqName.FindStringSubmatch(d.String())[1]] = true
		}
	}
	if len(mfs) != len(declared) {
		t.Fatalf("gathered %d metric families, the collectors declare %d: give every metric a series above", len(mfs), len(declared))
	}
	doc, err := metricsdoc.Documented("../docs/metrics.md", metricsdoc.Operator)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range metricsdoc.Check(mfs, doc) {
		t.Error(p)
	}
}

// TestGroupSeries: the failover counter and the phase follow the status,
// and a deleted group's series are removed.
func TestGroupSeries(t *testing.T) {
	ns := "series-test"
	triad := metricsTriad(ns)
	observeTriadMetrics(triad)
	triad.Status.Failovers, triad.Status.Phase, triad.Status.ActiveMember = 3, licensehav1.TriadNoQuorum, ""
	observeTriadMetrics(triad)

	reg := prometheus.NewRegistry()
	reg.MustRegister(groupFailovers, groupPhase, groupServing)
	if n := testutil.CollectAndCount(groupPhase, "licenseha_group_phase"); n != len(triadPhases) {
		t.Errorf("%d phase series, want one per triad phase (%d)", n, len(triadPhases))
	}
	if v := testutil.ToFloat64(groupPhase.WithLabelValues(ns, "plant", "LicenseTriad", "NoQuorum")); v != 1 {
		t.Errorf("phase NoQuorum %v, want 1", v)
	}
	if v := testutil.ToFloat64(groupPhase.WithLabelValues(ns, "plant", "LicenseTriad", "Active")); v != 0 {
		t.Errorf("phase Active %v, want 0", v)
	}
	if v := testutil.ToFloat64(groupServing.WithLabelValues(ns, "plant", "LicenseTriad")); v != 0 {
		t.Errorf("serving %v, want 0", v)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "licenseha_failovers_total" {
			if got := mf.GetMetric()[0].GetCounter().GetValue(); got != 3 {
				t.Errorf("failovers %v, want 3", got)
			}
		}
	}
	forgetGroup(ns, "plant")
	mfs, _ = reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "namespace" && l.GetValue() == ns {
					t.Errorf("%s: a series of the deleted group is left: %v", mf.GetName(), m.GetLabel())
				}
			}
		}
	}
}
