package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	lhclient "github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/test/harness"
	"github.com/licenseha/licenseha/test/probe"
)

const (
	// serviceBound is the generous bound for service to return after a fault.
	serviceBound = 15 * time.Second
	// serviceHandoverBound bounds a client's gap through the group's
	// Service during a planned handover: the handover (well under a
	// second), the endpoint update, and kube-proxy's minSyncPeriod (1 s)
	// for the second of the changes a handover makes.
	serviceHandoverBound = 3500 * time.Millisecond
	// failbackDelay is failover.failbackDelaySeconds of the suite's triads.
	failbackDelay = 5 * time.Second
	// peerTimeout is failover.peerTimeoutSeconds (the default).
	peerTimeout = 2 * time.Second
	seats       = 3
)

// triadRun is one scenario's triad with its probes.
type triadRun struct {
	ns, name string
	licence  string
	watcher  *probe.Watcher
	load     *probe.Load
	urls     map[string]string
	ctx      context.Context
}

// members of the suite's triads, in spec order.
var triadMembers = []string{"a", "b", "c"}

// startTriad creates a namespace and a triad (a Primary, b Secondary, c
// Tertiary), waits until it is Active 3/3 and Ready, then starts a Watcher
// on the members and a Load through the failover client.
func startTriad(ctx context.Context, prefix string, mutate func(*licensehav1.LicenseTriad)) *triadRun {
	GinkgoHelper()
	ns := specNamespace(ctx, prefix)
	name := "lic"
	start := time.Now()
	_, err := env.CreateTriad(ctx, ns, name, func(t *licensehav1.LicenseTriad) {
		t.Spec.Failover.FailbackDelaySeconds = int32(failbackDelay / time.Second)
		if mutate != nil {
			mutate(t)
		}
	})
	Expect(err).NotTo(HaveOccurred())
	t, err := env.WaitTriad(ctx, ns, name, 90*time.Second, formed)
	Expect(err).NotTo(HaveOccurred())
	figure("triad forms (create → Active 3/3 Ready)", time.Since(start))
	rememberTriadSecrets(ctx, ns, name, t)

	r := &triadRun{ns: ns, name: name, licence: "LIC-" + "LIC"}
	r.ctx, _ = bg()
	targets, err := env.Targets(ctx, ns, name, triadMembers...)
	Expect(err).NotTo(HaveOccurred())
	r.urls = map[string]string{}
	var endpoints []string
	for _, tg := range targets {
		r.urls[tg.Name] = tg.URL
		endpoints = append(endpoints, tg.URL)
	}
	r.watcher = probe.NewWatcher(targets, 50*time.Millisecond)
	go r.watcher.Run(r.ctx)
	// The primary serves once the triad is Active, at the latest after the
	// failback delay: when the members' containers start at different
	// moments (real nodes), a secondary that hears nothing from the primary
	// for a peer timeout takes the role first, and the primary takes it
	// back failbackDelaySeconds later. With a longer delay than this wait,
	// either of them may be serving.
	if time.Duration(t.Spec.Failover.FailbackDelaySeconds)*time.Second <= 2*failbackDelay {
		_, err = r.watcher.WaitFor(ctx, "a", 20*time.Second)
		Expect(err).NotTo(HaveOccurred(), "the primary serves once the triad is Active: %s", r.history())
	} else {
		who, _ := r.waitServing(ctx, 20*time.Second, "a", "b")
		GinkgoWriter.Printf("%s serves once the triad is Active (failback delay %d s)\n", who, t.Spec.Failover.FailbackDelaySeconds)
	}
	r.load, err = probe.StartLoad(ctx, lhclient.Config{Endpoints: endpoints, Home: r.urls["a"], Members: r.urls,
		ClientID: "e2e-" + prefix, Logger: clientLogger()}, r.licence, seats, 50*time.Millisecond)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { r.report() })
	return r
}

func formed(t *licensehav1.LicenseTriad) bool {
	return t.Status.Phase == licensehav1.TriadActive && t.Status.Quorum == "3/3" &&
		meta.IsStatusConditionTrue(t.Status.Conditions, licensehav1.ConditionReady)
}

// specNamespace creates a namespace for one spec and deletes it when the
// spec ends, after checking its pods' logs for secrets. Groups left running
// by earlier specs would load the machine for every later one: by the end of
// the suite some twenty triads, sixty agents heartbeating, which made
// timing-sensitive specs that ran late fail on a 2-core machine.
func specNamespace(ctx context.Context, prefix string) string {
	GinkgoHelper()
	ns, err := env.Namespace(ctx, prefix)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func(ctx SpecContext) {
		checkFilesForSecrets(namespaceLogFiles(ns))
		err := env.Client.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		Expect(client.IgnoreNotFound(err)).To(Succeed())
	})
	return ns
}

// rememberTriadSecrets records the admin token and the licence files.
func rememberTriadSecrets(ctx context.Context, ns, name string, t *licensehav1.LicenseTriad) {
	admin := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.AdminSecretName(name)}, admin); err == nil {
		for k, v := range admin.Data {
			rememberSecret(ns+"/"+admin.Name+"/"+k, string(v))
		}
	}
	rememberLicenceSecret(ctx, ns, t.Spec.LicenseSecretRef.Name)
}

func rememberLicenceSecret(ctx context.Context, ns, name string) {
	s := &corev1.Secret{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s); err == nil {
		for k, v := range s.Data {
			rememberSecret(ns+"/"+name+"/"+k, string(v))
		}
	}
}

// invariants checks what must hold at every moment of a triad scenario.
func (r *triadRun) invariants() {
	GinkgoHelper()
	Expect(r.watcher.MaxServing()).To(BeNumerically("<=", 1), "two members served at once: %v", r.history())
	Expect(r.watcher.Overlap()).To(BeZero(), "serving overlap")
	Expect(r.load.Lost()).To(BeZero(), "seats lost")
}

func (r *triadRun) history() string {
	h := r.watcher.History()
	out := ""
	for _, c := range h {
		out += fmt.Sprintf("\n  %s %v", c.At.Format("15:04:05.000"), c.Serving)
	}
	return out
}

func (r *triadRun) report() {
	GinkgoWriter.Printf("Serving history of %s/%s:%s\n", r.ns, r.name, r.history())
	GinkgoWriter.Printf("Client endpoint at the end: %s\n", r.load.Client.Endpoint())
}

func (r *triadRun) pod(member string) string { return harness.PodName(r.ns, r.name, member) }

func (r *triadRun) fault(ctx context.Context, kind string, members ...string) time.Time {
	GinkgoHelper()
	args := []string{kind}
	for _, m := range members {
		args = append(args, r.pod(m))
	}
	at := time.Now()
	Expect(env.Fault(ctx, args...)).To(Succeed())
	return at
}

// waitServing waits until some member (one of want, or any when want is
// empty) serves alone and returns it and when it was first seen.
func (r *triadRun) waitServing(ctx context.Context, timeout time.Duration, want ...string) (string, time.Time) {
	GinkgoHelper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if s := r.watcher.Serving(); len(s) == 1 && (len(want) == 0 || slices.Contains(want, s[0])) {
			at, err := r.watcher.WaitFor(ctx, s[0], time.Second)
			if err == nil {
				return s[0], at
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	Fail(fmt.Sprintf("nobody of %v served alone within %s: %s", want, timeout, r.history()))
	return "", time.Time{}
}

// outage waits for the first time nobody served after t (a fault seen by
// the watcher) and then for service to return; it returns when service
// stopped and when it returned. When the watcher never saw a moment without
// service within a few seconds, both are t.
func (r *triadRun) outage(ctx context.Context, t time.Time, timeout time.Duration) (time.Time, time.Time, string) {
	GinkgoHelper()
	deadline := time.Now().Add(timeout)
	var from time.Time
	for time.Now().Before(deadline) {
		for _, c := range r.watcher.History() {
			if c.At.Before(t) {
				continue
			}
			if from.IsZero() && len(c.Serving) == 0 {
				from = c.At
			} else if !from.IsZero() && c.At.After(from) && len(c.Serving) == 1 {
				return from, c.At, c.Serving[0]
			}
		}
		if from.IsZero() && time.Since(t) > 5*time.Second {
			return t, t, ""
		}
		time.Sleep(50 * time.Millisecond)
	}
	Fail(fmt.Sprintf("service did not return within %s: %s", timeout, r.history()))
	return time.Time{}, time.Time{}, ""
}

// servedSince reports whether member was seen serving after t.
func (r *triadRun) servedSince(member string, t time.Time) bool {
	h := r.watcher.History()
	for i, c := range h {
		end := time.Now()
		if i+1 < len(h) {
			end = h[i+1].At
		}
		if end.After(t) && slices.Contains(c.Serving, member) {
			return true
		}
	}
	return false
}

// stoppedServing returns when member was first seen not serving after t.
func (r *triadRun) stoppedServing(member string, t time.Time) (time.Time, bool) {
	for _, c := range r.watcher.History() {
		if c.At.After(t) && !slices.Contains(c.Serving, member) && !slices.Contains(c.Unknown, member) {
			return c.At, true
		}
	}
	return time.Time{}, false
}

func (r *triadRun) triad(ctx context.Context) *licensehav1.LicenseTriad {
	GinkgoHelper()
	t := &licensehav1.LicenseTriad{}
	Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: r.name}, t)).To(Succeed())
	return t
}

// update applies f to the triad, retrying on conflicts.
func (r *triadRun) update(ctx context.Context, f func(*licensehav1.LicenseTriad)) {
	GinkgoHelper()
	Eventually(func() error {
		t := &licensehav1.LicenseTriad{}
		if err := env.Client.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: r.name}, t); err != nil {
			return err
		}
		f(t)
		return env.Client.Update(ctx, t)
	}).WithTimeout(20 * time.Second).Should(Succeed())
}

// leaseHolder is the member holding the triad's Lease ("" when none).
func (r *triadRun) leaseHolder(ctx context.Context) string {
	l := &coordinationv1.Lease{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: r.ns, Name: group.LeaseName(r.name)}, l); err != nil {
		return "?"
	}
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	h := *l.Spec.HolderIdentity
	if len(h) > len(r.name)+1 {
		return h[len(r.name)+1:]
	}
	return h
}

// serviceLoad holds seats through the triad's Service alone.
func (r *triadRun) serviceLoad(ctx context.Context) *probe.Load {
	GinkgoHelper()
	url := serviceURL(ctx, r.ns, r.name)
	var l *probe.Load
	Eventually(func() error {
		var err error
		l, err = probe.StartLoad(r.ctx, lhclient.Config{Endpoints: []string{url}, ClientID: "e2e-svc-" + r.ns, Logger: clientLogger()},
			r.licence, seats, 50*time.Millisecond)
		return err
	}).WithTimeout(30 * time.Second).Should(Succeed())
	return l
}

// backToNormal waits until the primary serves again and the triad is 3/3.
func (r *triadRun) backToNormal(ctx context.Context) {
	GinkgoHelper()
	r.waitServing(ctx, 90*time.Second, "a")
	_, err := env.WaitTriad(ctx, r.ns, r.name, 90*time.Second, formed)
	Expect(err).NotTo(HaveOccurred())
}

// dynamicTargets keeps the watcher's targets at the members' current pod
// IPs (pods recreated by a roll or a replacement get new addresses).
func (r *triadRun) dynamicTargets(members func() []string) {
	go func() {
		for r.ctx.Err() == nil {
			var ts []probe.Target
			for _, m := range members() {
				p := &corev1.Pod{}
				if err := env.Client.Get(r.ctx, client.ObjectKey{Namespace: r.ns, Name: group.PodName(r.name, m)}, p); err == nil && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
					ts = append(ts, probe.Target{Name: m, URL: "http://" + p.Status.PodIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort)})
				}
			}
			r.watcher.SetTargets(ts)
			time.Sleep(200 * time.Millisecond)
		}
	}()
}

// serviceURL is the triad's Service (selects the active member only).
func serviceURL(ctx context.Context, ns, name string) string {
	GinkgoHelper()
	s := &corev1.Service{}
	Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, s)).To(Succeed())
	return "http://" + s.Spec.ClusterIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort)
}

func exists(ctx context.Context, obj client.Object, ns, name string) bool {
	err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return false
	}
	Expect(err).NotTo(HaveOccurred())
	return true
}

var _ = metav1.Now

// clientLogger sends the failover client's logs to the spec's output.
func clientLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
