// Package metricsdoc holds docs/metrics.md and the metrics the code exports
// to each other: the tests of the operator (controllers) and of the agent
// (internal/agent) gather their registries and check them with Check.
package metricsdoc

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// Sections of docs/metrics.md: the start of their "## " heading.
const (
	Operator       = "## Operator metrics"
	Agent          = "## Agent metrics"
	ControllerRuns = "## controller-runtime metrics"
)

var (
	row  = regexp.MustCompile("^\\|\\s*(`[a-z_:*]+`(?:\\s*,\\s*`[a-z_:*]+`)*)\\s*\\|\\s*([a-z]*)\\s*\\|")
	name = regexp.MustCompile("`([a-z_:*]+)`")
)

// Documented returns the metrics listed in the tables of one section of the
// metrics document, by name, with the type column (counter, gauge, ...).
func Documented(path, section string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.HasPrefix(line, section)
			continue
		}
		if !in {
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil {
			for _, n := range name.FindAllStringSubmatch(m[1], -1) {
				out[n[1]] = m[2]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no metric table under %q", path, section)
	}
	return out, nil
}

// All returns every metric name the document lists in any section; names
// with a * (go_*) are patterns.
func All(path string) (map[string]string, error) {
	all := map[string]string{}
	for _, s := range []string{Operator, Agent, ControllerRuns} {
		d, err := Documented(path, s)
		if err != nil {
			return nil, err
		}
		for k, v := range d {
			all[k] = v
		}
	}
	return all, nil
}

// Check compares gathered metric families with the documented ones: every
// family is documented with its type, every documented metric is gathered,
// and promlint finds nothing to complain about. It returns the problems.
func Check(mfs []*dto.MetricFamily, documented map[string]string) []string {
	var problems []string
	gathered := map[string]bool{}
	for _, mf := range mfs {
		n := mf.GetName()
		gathered[n] = true
		typ := strings.ToLower(mf.GetType().String())
		switch doc, ok := documented[n]; {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s (%s) is exported but not documented", n, typ))
		case doc != typ:
			problems = append(problems, fmt.Sprintf("%s is a %s, documented as %q", n, typ, doc))
		}
	}
	for n := range documented {
		if !gathered[n] {
			problems = append(problems, fmt.Sprintf("%s is documented but not exported", n))
		}
	}
	lint, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		problems = append(problems, "promlint: "+err.Error())
	}
	for _, p := range lint {
		problems = append(problems, fmt.Sprintf("promlint: %s: %s", p.Metric, p.Text))
	}
	sort.Strings(problems)
	return problems
}
