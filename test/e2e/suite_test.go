// Package e2e is the end-to-end fault suite: licenseha runs for real on the
// local cluster (test/harness) and the scenarios kill, freeze and partition
// members while probes (test/probe) watch who serves and hold printer seats
// through the failover client. Run it as root with `make test-e2e`.
package e2e

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/licenseha/licenseha/test/harness"
)

// instance is the local cluster instance of the suite (a developer's runs on
// 0); E2E_INSTANCE chooses another, e.g. to run two suites side by side.
var instance = func() int {
	if n, err := strconv.Atoi(os.Getenv("E2E_INSTANCE")); err == nil {
		return n
	}
	return 7
}()

var (
	env *harness.Env
	// secrets collects every secret value the suite created or the operator
	// generated, so the last spec can check that no log shows one.
	secrets   = map[string]string{}
	secretsMu sync.Mutex
	// figures are the measurements printed at the end.
	figures   = map[string][]time.Duration{}
	figuresMu sync.Mutex
	// startNetns is the test process's network namespace at the start.
	startNetns string
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "licenseha end-to-end fault suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	if os.Geteuid() != 0 {
		Skip("the end-to-end suite needs root (network namespaces)")
	}
	var err error
	startNetns, err = os.Readlink("/proc/self/ns/net")
	Expect(err).NotTo(HaveOccurred())
	dir, err := os.MkdirTemp("", "licenseha-e2e-")
	Expect(err).NotTo(HaveOccurred())
	env, err = harness.Start(ctx, harness.Options{Instance: instance, StateDir: dir,
		Log: func(format string, args ...any) { fmt.Fprintf(GinkgoWriter, format+"\n", args...) }})
	if env != nil {
		DeferCleanup(env.Stop)
	}
	Expect(err).NotTo(HaveOccurred())
	AddReportEntry("state directory", dir)
}, NodeTimeout(5*time.Minute))

var _ = AfterSuite(func() {
	defer func() {
		if env != nil {
			checkLogsForSecrets()
		}
		// A test process whose main thread entered a pod's network namespace
		// (to dial from inside the pod) would from then on act as part of
		// that pod: test/podnet guards against it, and this checks it.
		if startNetns != "" {
			now, err := os.Readlink("/proc/self/ns/net")
			Expect(err).NotTo(HaveOccurred())
			Expect(now).To(Equal(startNetns), "the test process moved into another network namespace (a pod's?)")
		}
	}()
	figuresMu.Lock()
	defer figuresMu.Unlock()
	var names []string
	for n := range figures {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		ds := figures[n]
		var strs []string
		var lo, hi, sum time.Duration
		for i, d := range ds {
			strs = append(strs, d.Round(10*time.Millisecond).String())
			if i == 0 || d < lo {
				lo = d
			}
			hi = max(hi, d)
			sum += d
		}
		fmt.Fprintf(&b, "%-34s n=%-3d min=%-8s mean=%-8s max=%-8s [%s]\n", n, len(ds), lo.Round(10*time.Millisecond),
			(sum / time.Duration(len(ds))).Round(10*time.Millisecond), hi.Round(10*time.Millisecond), strings.Join(strs, " "))
	}
	fmt.Fprintf(GinkgoWriter, "Figures:\n%s", b.String())
	AddReportEntry("figures", b.String())
})

// figure records a measurement and prints it.
func figure(name string, d time.Duration) {
	figuresMu.Lock()
	figures[name] = append(figures[name], d)
	figuresMu.Unlock()
	GinkgoWriter.Printf("FIGURE %s: %s\n", name, d.Round(time.Millisecond))
	AddReportEntry("figure "+name, d.Round(time.Millisecond).String())
}

// rememberSecret records a value that must never appear in a log.
func rememberSecret(what, value string) {
	if strings.TrimSpace(value) == "" {
		return
	}
	secretsMu.Lock()
	secrets[what] = value
	secretsMu.Unlock()
}

// bg returns a context for background probes of one spec.
func bg() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	return ctx, cancel
}
