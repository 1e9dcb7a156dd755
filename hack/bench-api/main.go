// Command bench-api measures what steady groups cost the API server: the
// requests counted by kube-apiserver's apiserver_request_total while the
// cluster and the operator run without groups (the baseline), then with
// triads and backup pairs that have formed and sit idle. The difference,
// per group and minute, is the groups' share, broken down by verb and
// resource. Run it as root (the local cluster): make bench-api.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/test/harness"
)

const ns = "bench-api"

func main() {
	triads := flag.Int("triads", 2, "triads to create")
	pairs := flag.Int("pairs", 2, "ActivePassive backup pairs to create")
	window := flag.Duration("window", 3*time.Minute, "length of each measurement window")
	settle := flag.Duration("settle", 30*time.Second, "wait after the groups formed, before measuring")
	instance := flag.Int("instance", 8, "local cluster instance to use")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *instance, *triads, *pairs, *window, *settle); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// counts are apiserver_request_total summed by "VERB resource".
type counts map[string]float64

func run(ctx context.Context, instance, triads, pairs int, window, settle time.Duration) error {
	env, err := harness.Start(ctx, harness.Options{Instance: instance, Log: logf})
	if err != nil {
		return err
	}
	defer env.Stop()
	if err := env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		return err
	}
	time.Sleep(settle)
	logf("Baseline: the cluster and the operator without groups, %v", window)
	base, err := measure(ctx, env, window)
	if err != nil {
		return err
	}
	for i := 1; i <= triads; i++ {
		if _, err := env.CreateTriad(ctx, ns, fmt.Sprintf("t%d", i), nil); err != nil {
			return err
		}
	}
	withTriads, err := steady(ctx, env, fmt.Sprintf("%d triads", triads), window, settle)
	if err != nil {
		return err
	}
	for i := 1; i <= pairs; i++ {
		if err := createPair(ctx, env, fmt.Sprintf("p%d", i)); err != nil {
			return err
		}
	}
	withPairs, err := steady(ctx, env, fmt.Sprintf("%d triads and %d pairs", triads, pairs), window, settle)
	if err != nil {
		return err
	}
	fmt.Printf("API requests per steady group and minute (apiserver_request_total, windows of %v)\n\n", window)
	if triads > 0 {
		report("LicenseTriad", base, withTriads, triads)
	}
	if pairs > 0 {
		report("LicenseBackupPair (ActivePassive)", withTriads, withPairs, pairs)
	}
	return nil
}

// steady waits until every group is Ready and settled, measures, and checks
// that every group was still Ready at the end.
func steady(ctx context.Context, env *harness.Env, what string, window, settle time.Duration) (counts, error) {
	if err := waitReady(ctx, env, 3*time.Minute); err != nil {
		return nil, err
	}
	logf("%s Ready; settling for %v", what, settle)
	time.Sleep(settle)
	logf("Measuring with %s, %v", what, window)
	c, err := measure(ctx, env, window)
	if err != nil {
		return nil, err
	}
	if err := waitReady(ctx, env, time.Second); err != nil {
		return nil, fmt.Errorf("a group was not Ready at the end of the window: %w", err)
	}
	return c, nil
}

// measure returns the requests per minute over window.
func measure(ctx context.Context, env *harness.Env, window time.Duration) (counts, error) {
	before, err := scrape(ctx, env)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(window):
	}
	after, err := scrape(ctx, env)
	if err != nil {
		return nil, err
	}
	minutes := time.Since(start).Minutes()
	rate := counts{}
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			rate[k] = d / minutes
		}
	}
	return rate, nil
}

// scrape reads apiserver_request_total. The scrape itself is one GET of
// /metrics; it falls in both windows alike.
func scrape(ctx context.Context, env *harness.Env) (counts, error) {
	out, err := env.Kubectl(ctx, "get", "--raw", "/metrics")
	if err != nil {
		return nil, err
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(out))
	if err != nil {
		return nil, fmt.Errorf("parsing the API server's metrics: %w", err)
	}
	fam, ok := families["apiserver_request_total"]
	if !ok {
		return nil, fmt.Errorf("the API server exports no apiserver_request_total")
	}
	c := counts{}
	for _, m := range fam.GetMetric() {
		c[key(m)] += m.GetCounter().GetValue()
	}
	return c, nil
}

func key(m *dto.Metric) string {
	var verb, resource, sub string
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case "verb":
			verb = l.GetValue()
		case "resource":
			resource = l.GetValue()
		case "subresource":
			sub = l.GetValue()
		}
	}
	if sub != "" {
		resource += "/" + sub
	}
	return verb + " " + resource
}

// report prints the difference between two windows per group and minute,
// by request.
func report(kind string, before, after counts, groups int) {
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	type row struct {
		key      string
		perGroup float64
	}
	var rows []row
	var total float64
	var noise float64
	for k := range keys {
		d := (after[k] - before[k]) / float64(groups)
		if !groupResource(k) {
			noise += d
			continue
		}
		total += d
		if d >= 0.05 || d <= -0.05 {
			rows = append(rows, row{k, d})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].perGroup > rows[j].perGroup })
	fmt.Printf("%s (%d groups):\n\n| request | per group and minute |\n|---|---|\n", kind, groups)
	for _, r := range rows {
		fmt.Printf("| %s | %.1f |\n", r.key, r.perGroup)
	}
	fmt.Printf("| **total** | **%.1f** |\n\n", total)
	fmt.Printf("Requests on other resources (the cluster components' watches, which re-open at random every 5-10 min): %+.1f per group and minute, not counted.\n\n", noise)
}

// touched are the resources a group's agents or the operator read or write
// for it; the watches of the control plane's own controllers on everything
// else are noise between the windows.
var touched = map[string]bool{
	"leases": true, "pods": true, "pods/status": true, "configmaps": true, "secrets": true, "events": true,
	"services": true, "endpointslices": true, "endpoints": true, "serviceaccounts": true, "serviceaccounts/token": true,
	"roles": true, "rolebindings": true, "networkpolicies": true, "persistentvolumeclaims": true,
	"licensetriads": true, "licensetriads/status": true, "licensebackuppairs": true, "licensebackuppairs/status": true,
}

// groupResource reports whether a "VERB resource" key is about a resource
// groups touch.
func groupResource(k string) bool {
	_, resource, _ := strings.Cut(k, " ")
	return touched[resource]
}

func createPair(ctx context.Context, env *harness.Env, name string) error {
	ids := map[string]string{"main": "LIC-" + strings.ToUpper(name) + "-MAIN", "backup": "LIC-" + strings.ToUpper(name) + "-BACKUP"}
	for side, id := range ids {
		s, err := env.LicenceSecret(ns, name+"-"+side+"-licenses", name, id, 50)
		if err != nil {
			return err
		}
		if err := env.Client.Create(ctx, s); err != nil {
			return err
		}
	}
	p := &licensehav1.LicenseBackupPair{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	p.Spec.Mode = licensehav1.ActivePassive
	p.Spec.Main.LicenseSecretRef.Name = name + "-main-licenses"
	p.Spec.Backup.LicenseSecretRef.Name = name + "-backup-licenses"
	p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: ids["main"], Backup: ids["backup"]}}
	return env.Client.Create(ctx, p)
}

// waitReady waits until every group in the namespace is Ready.
func waitReady(ctx context.Context, env *harness.Env, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		notReady, err := notReadyGroups(ctx, env)
		if err == nil && len(notReady) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("not Ready: %s", strings.Join(notReady, ", "))
			}
			return err
		}
		time.Sleep(time.Second)
	}
}

// notReadyGroups names the triads and pairs in ns whose Ready condition is
// not True.
func notReadyGroups(ctx context.Context, env *harness.Env) ([]string, error) {
	triads, pairs := &licensehav1.LicenseTriadList{}, &licensehav1.LicenseBackupPairList{}
	for _, list := range []client.ObjectList{triads, pairs} {
		if err := env.Client.List(ctx, list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
	}
	var out []string
	check := func(kind, name string, conditions []metav1.Condition) {
		if !meta.IsStatusConditionTrue(conditions, licensehav1.ConditionReady) {
			out = append(out, kind+" "+name)
		}
	}
	for _, t := range triads.Items {
		check("triad", t.Name, t.Status.Conditions)
	}
	for _, p := range pairs.Items {
		check("pair", p.Name, p.Status.Conditions)
	}
	return out, nil
}
