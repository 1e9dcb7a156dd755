package manifests_test

import (
	"bytes"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/licenseha/licenseha/internal/metricsdoc"
)

var metricName = regexp.MustCompile(`\b(licenseha_[a-z_]+|controller_runtime_[a-z_]+|workqueue_[a-z_]+)\b`)

// runbookBase is where every alert's runbook_url points: a section of
// docs/troubleshooting.md.
const runbookBase = "https://github.com/licenseha/licenseha/blob/main/docs/troubleshooting.md#"

type ruleFile struct {
	Groups []struct {
		Name  string `json:"name"`
		Rules []struct {
			Alert       string            `json:"alert"`
			Expr        string            `json:"expr"`
			For         string            `json:"for"`
			Labels      map[string]string `json:"labels"`
			Annotations map[string]string `json:"annotations"`
		} `json:"rules"`
	} `json:"groups"`
}

// TestAlerts keeps config/prometheus/alerts.yaml, docs/metrics.md and
// docs/troubleshooting.md in step: every metric an alert uses is documented
// (test/promql parses the expressions; this is a quick look for names),
// every alert has a severity, a summary, a row in docs/metrics.md and a
// runbook_url pointing at a heading of docs/troubleshooting.md.
func TestAlerts(t *testing.T) {
	doc := read(t, root+"/docs/metrics.md")
	documented, err := metricsdoc.All(root + "/docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := headingAnchors(read(t, root+"/docs/troubleshooting.md"))
	var rules ruleFile
	if err := yaml.UnmarshalStrict([]byte(read(t, root+"/config/prometheus/alerts.yaml")), &rules); err != nil {
		t.Fatalf("config/prometheus/alerts.yaml: %v", err)
	}
	seen := map[string]bool{}
	n := 0
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			n++
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("group %s: a rule without alert or expr", g.Name)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, s)
			}
			if r.Annotations["summary"] == "" {
				t.Errorf("%s: no summary annotation", r.Alert)
			}
			if !strings.Contains(doc, "`"+r.Alert+"`") {
				t.Errorf("%s is not listed in docs/metrics.md", r.Alert)
			}
			url := r.Annotations["runbook_url"]
			switch anchor, ok := strings.CutPrefix(url, runbookBase); {
			case !ok:
				t.Errorf("%s: runbook_url %q does not point into docs/troubleshooting.md (%s...)", r.Alert, url, runbookBase)
			case !anchors[anchor]:
				t.Errorf("%s: runbook_url %q: docs/troubleshooting.md has no heading with the anchor %q", r.Alert, url, anchor)
			}
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				seen[m] = true
			}
		}
	}
	var names []string
	for m := range seen {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		if _, ok := documented[m]; !ok {
			t.Errorf("metric %s is not documented in docs/metrics.md", m)
		}
	}
	if len(names) < 5 || n < 10 {
		t.Errorf("found only %d rules using %v; is the parsing broken?", n, names)
	}
}

// TestMonitoringCopies: the chart's copies of the rules and the dashboard,
// and the kustomize PrometheusRule, are what hack/sync-chart.sh makes from
// config/prometheus (make manifests).
func TestMonitoringCopies(t *testing.T) {
	for src, dst := range map[string]string{
		"config/prometheus/alerts.yaml":            chartDir + "/files/alerts.yaml",
		"config/prometheus/grafana-dashboard.json": chartDir + "/files/grafana-dashboard.json",
	} {
		if read(t, root+"/"+src) != read(t, dst) {
			t.Errorf("%s differs from %s: run make manifests", dst, src)
		}
	}
	var plain, wrapped struct {
		Groups any `json:"groups"`
		Spec   struct {
			Groups any `json:"groups"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal([]byte(read(t, root+"/config/prometheus/alerts.yaml")), &plain); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(read(t, root+"/config/prometheus/prometheus_rule.yaml")), &wrapped); err != nil {
		t.Fatal(err)
	}
	a, _ := yaml.Marshal(plain.Groups)
	b, _ := yaml.Marshal(wrapped.Spec.Groups)
	if !bytes.Equal(a, b) || len(a) < 100 {
		t.Errorf("config/prometheus/prometheus_rule.yaml does not hold the rules of alerts.yaml: run make manifests")
	}
}

// headingAnchors returns the anchors GitHub gives the headings of a
// Markdown document: lower case, punctuation but - and _ dropped, spaces as -.
func headingAnchors(md string) map[string]bool {
	out := map[string]bool{}
	drop := regexp.MustCompile(`[^\p{L}\p{N}\- _]`)
	for _, line := range strings.Split(md, "\n") {
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.TrimSpace(strings.TrimLeft(line, "#"))
		a := strings.ReplaceAll(drop.ReplaceAllString(strings.ToLower(h), ""), " ", "-")
		out[a] = true
	}
	return out
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
