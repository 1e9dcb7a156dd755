package manifests_test

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var metricName = regexp.MustCompile(`\b(licenseha_[a-z_]+|controller_runtime_[a-z_]+|workqueue_[a-z_]+)\b`)

// TestAlertsUseDocumentedMetrics keeps config/prometheus/alerts.yaml,
// docs/metrics.md and controllers/metrics.go in step: every metric an alert
// uses and every metric the operator registers is documented, and every
// alert has a severity and a summary.
func TestAlertsUseDocumentedMetrics(t *testing.T) {
	doc := read(t, root+"/docs/metrics.md")
	var rules struct {
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
	if err := yaml.UnmarshalStrict([]byte(read(t, root+"/config/prometheus/alerts.yaml")), &rules); err != nil {
		t.Fatalf("config/prometheus/alerts.yaml: %v", err)
	}
	seen := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
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
			for _, m := range metricName.FindAllString(r.Expr, -1) {
				seen[m] = true
			}
		}
	}
	for _, m := range regexp.MustCompile(`Name:\s*"(licenseha_[a-z_]+)"`).FindAllStringSubmatch(read(t, root+"/controllers/metrics.go"), -1) {
		seen[m[1]] = true
	}
	var names []string
	for m := range seen {
		names = append(names, m)
	}
	sort.Strings(names)
	for _, m := range names {
		if !strings.Contains(doc, "`"+m+"`") {
			t.Errorf("metric %s is not documented in docs/metrics.md", m)
		}
	}
	if len(names) < 5 {
		t.Errorf("found only %v; is the parsing broken?", names)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
