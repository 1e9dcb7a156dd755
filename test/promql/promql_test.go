// Package promql checks every PromQL expression licenseha ships (the alerting
// rules and the Grafana dashboard) with Prometheus' parser: each must parse,
// and each metric it selects must be one docs/metrics.md lists. The tests of
// the operator and the agent (controllers, internal/agent) check in turn that
// docs/metrics.md lists exactly the metrics they export, so a query naming a
// metric nobody exports fails here or there.
package promql

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"go.yaml.in/yaml/v3"
)

const root = "../.."

// generated are series Prometheus makes itself rather than scrapes.
var generated = map[string]bool{"up": true}

// documented returns the metric names in the first column of the tables of
// docs/metrics.md; a name ending in * (go_*) stands for a prefix.
func documented(t *testing.T) (names map[string]bool, prefixes []string) {
	t.Helper()
	b, err := os.ReadFile(root + "/docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	names = map[string]bool{}
	cell := regexp.MustCompile("^\\|\\s*([^|]+)\\|")
	name := regexp.MustCompile("`([a-zA-Z_:][a-zA-Z0-9_:]*\\*?)`")
	for _, line := range strings.Split(string(b), "\n") {
		m := cell.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		for _, n := range name.FindAllStringSubmatch(m[1], -1) {
			if p, ok := strings.CutSuffix(n[1], "*"); ok {
				prefixes = append(prefixes, p)
			} else {
				names[n[1]] = true
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("docs/metrics.md: found only %d metric names; is the parsing broken?", len(names))
	}
	return names, prefixes
}

// grafanaVars stand in for the dashboard's variables so that its queries
// parse.
var grafanaVars = strings.NewReplacer("$__rate_interval", "5m", "$__interval", "1m", "$__range", "1h",
	"$namespace", ".*")

// selectedMetrics parses expr and returns the metric names its selectors
// use, and an error for an expression that does not parse or a selector
// that names no metric (which Prometheus would refuse or which would match
// every series).
func selectedMetrics(p parser.Parser, expr string) ([]string, error) {
	e, err := p.ParseExpr(expr)
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				if m.Type != labels.MatchEqual {
					bad = fmt.Errorf("selector %s matches the metric name with %s", vs, m.Type)
				}
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	return names, bad
}

type query struct{ where, expr string }

func ruleQueries(t *testing.T, path string) []query {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var qs []query
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{where: path + ": " + r.Alert + r.Record, expr: r.Expr})
		}
	}
	return qs
}

// labelValues matches the Grafana variable query label_values(<expr>, label).
var labelValues = regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

func dashboardQueries(t *testing.T, path string) []query {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string          `json:"name"`
				Type  string          `json:"type"`
				Query json.RawMessage `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var qs []query
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				qs = append(qs, query{where: fmt.Sprintf("%s: panel %q %s", path, p.Title, tg.RefID), expr: grafanaVars.Replace(tg.Expr)})
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("%s: variable %s: %v", path, v.Name, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("%s: variable %s: query %q is not label_values(<selector>, <label>)", path, v.Name, q.Query)
			continue
		}
		qs = append(qs, query{where: path + ": variable " + v.Name, expr: grafanaVars.Replace(m[1])})
	}
	return qs
}

type panel struct {
	Title   string `json:"title"`
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"`
}

func TestQueriesNameExportedMetrics(t *testing.T) {
	names, prefixes := documented(t)
	known := func(n string) bool {
		if names[n] || generated[n] {
			return true
		}
		// Histograms are documented by their name; their series carry
		// suffixes.
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && names[b] {
				return true
			}
		}
		for _, p := range prefixes {
			if strings.HasPrefix(n, p) {
				return true
			}
		}
		return false
	}
	var qs []query
	for _, f := range []string{"/config/prometheus/alerts.yaml", "/charts/licenseha/files/alerts.yaml"} {
		qs = append(qs, ruleQueries(t, root+f)...)
	}
	for _, f := range []string{"/config/prometheus/grafana-dashboard.json", "/charts/licenseha/files/grafana-dashboard.json"} {
		qs = append(qs, dashboardQueries(t, root+f)...)
	}
	p := parser.NewParser(parser.Options{})
	used := map[string]bool{}
	for _, q := range qs {
		ms, err := selectedMetrics(p, q.expr)
		if err != nil {
			t.Errorf("%s: %v\n  %s", q.where, err, q.expr)
			continue
		}
		if len(ms) == 0 {
			t.Errorf("%s: selects no metric: %s", q.where, q.expr)
		}
		for _, m := range ms {
			used[m] = true
			if !known(m) {
				t.Errorf("%s: metric %s is not exported (not in docs/metrics.md)", q.where, m)
			}
		}
	}
	if len(qs) < 40 {
		t.Errorf("found only %d queries; is the parsing broken?", len(qs))
	}
	var list []string
	for m := range used {
		list = append(list, m)
	}
	sort.Strings(list)
	t.Logf("%d queries use %d metrics: %s", len(qs), len(list), strings.Join(list, " "))
}
