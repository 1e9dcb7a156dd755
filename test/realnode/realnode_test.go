// Package realnode is the first end-to-end suite on real nodes: the
// real-node cluster (hack/realcluster: kubelets, containerd, runc, CNI,
// kube-proxy) runs the operator and a triad from the licenseha image
// (make image); a member's container is SIGKILLed while a client holds
// seats through the triad's Service; the cluster's tear-down must leave
// nothing behind. Run it as root with `make test-e2e-realnode`.
package realnode

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	lhclient "github.com/licenseha/licenseha/pkg/client"
	"github.com/licenseha/licenseha/test/harness"
	"github.com/licenseha/licenseha/test/probe"
)

// instance is the real-node cluster instance of the suite (a developer's
// runs on 0); REALNODE_INSTANCE chooses another.
var instance = func() int {
	if n, err := strconv.Atoi(os.Getenv("REALNODE_INSTANCE")); err == nil {
		return n
	}
	return 1
}()

var env *harness.Env

func TestRealNode(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "licenseha on real nodes")
}

func figure(name string, d time.Duration) {
	AddReportEntry(name, d.Round(time.Millisecond).String())
	fmt.Fprintf(GinkgoWriter, "FIGURE %s: %s\n", name, d.Round(time.Millisecond))
}

var _ = BeforeSuite(func(ctx SpecContext) {
	if os.Geteuid() != 0 {
		Skip("the real-node suite needs root (containerd, cgroups, iptables)")
	}
	dir, err := os.MkdirTemp("", "licenseha-realnode-")
	Expect(err).NotTo(HaveOccurred())
	began := time.Now()
	env, err = harness.Start(ctx, harness.Options{Instance: instance, StateDir: dir,
		Log: func(format string, args ...any) { fmt.Fprintf(GinkgoWriter, format+"\n", args...) }})
	DeferCleanup(func(ctx SpecContext) {
		if env == nil {
			return
		}
		env.Stop()
		// The tear-down leaves no processes, containerd state, mounts,
		// bridges, iptables chains, cgroups or changed sysctls behind.
		Expect(env.CheckClean(ctx)).To(Succeed())
	}, NodeTimeout(3*time.Minute))
	Expect(err).NotTo(HaveOccurred())
	figure("cluster up + operator deployed", time.Since(began))
	AddReportEntry("state directory", dir)
}, NodeTimeout(10*time.Minute))

var _ = Describe("Real nodes", Label("realnode"), func() {
	It("runs the operator from the licenseha image on a real node", func(ctx SpecContext) {
		pods := &corev1.PodList{}
		Expect(env.Client.List(ctx, pods, client.InNamespace("licenseha-system"))).To(Succeed())
		Expect(pods.Items).NotTo(BeEmpty())
		p := pods.Items[0]
		Expect(p.Spec.NodeName).To(HavePrefix("realcluster-node-"))
		Expect(p.Spec.Containers[0].Image).To(Equal(harness.Image))
		Expect(p.Status.ContainerStatuses).To(HaveLen(1))
		st := p.Status.ContainerStatuses[0]
		Expect(st.Ready).To(BeTrue())
		Expect(st.ContainerID).To(HavePrefix("containerd://"))
		Expect(st.ImageID).NotTo(BeEmpty())
	})

	It("runs a triad as its pod spec says and fails over through the Service when the active container is killed", func(ctx SpecContext) {
		ns, err := env.Namespace(ctx, "realnode")
		Expect(err).NotTo(HaveOccurred())
		name := "lic"
		created := time.Now()
		_, err = env.CreateTriad(ctx, ns, name, func(t *licensehav1.LicenseTriad) {
			t.Spec.Failover.FailbackDelaySeconds = 5
		})
		Expect(err).NotTo(HaveOccurred())
		_, err = env.WaitTriad(ctx, ns, name, 3*time.Minute, func(t *licensehav1.LicenseTriad) bool {
			return t.Status.Phase == licensehav1.TriadActive && t.Status.Quorum == "3/3" &&
				meta.IsStatusConditionTrue(t.Status.Conditions, licensehav1.ConditionReady)
		})
		Expect(err).NotTo(HaveOccurred())
		figure("triad forms on real nodes (create → Active 3/3 Ready)", time.Since(created))

		By("checking a member pod against its spec on the real kubelet and runc")
		// The triad's status comes from the agents; the kubelet reports the
		// readiness probe's verdict on its own schedule (every 2 s): wait
		// for the pod's Ready condition before reading the pod.
		pod := &corev1.Pod{}
		Eventually(func() bool {
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, "a")}, pod); err != nil {
				return false
			}
			for _, c := range pod.Status.Conditions {
				if c.Type == corev1.PodReady {
					return c.Status == corev1.ConditionTrue
				}
			}
			return false
		}).WithTimeout(90*time.Second).WithPolling(200*time.Millisecond).Should(BeTrue(), "member pod a is Ready")
		checkMemberPod(pod)

		By("holding seats through the triad's Service")
		watcher, load := watchThroughService(ctx, ns, name, "realnode-svc")

		By("killing the active member's container")
		killed := time.Now()
		Expect(env.Fault(ctx, "kill", harness.PodName(ns, name, "a"))).To(Succeed())
		// The kubelet restarts a killed container at once (the first
		// restart has no back-off), so either the restarted primary takes
		// its role back or the secondary takes over first: both are a
		// failover; what matters is that one member serves again, never
		// two, and the client through the Service loses nothing.
		back, who := servedAgain(watcher, killed, 90*time.Second, "a member serves again after the kill")
		figure("kill of active container → a member serves", back.Sub(killed))
		fmt.Fprintf(GinkgoWriter, "after the kill %s serves\n", who)
		// The client goes on through the Service: kube-proxy sends it to
		// the member that serves once the EndpointSlice changes.
		Eventually(func() time.Time { return load.LastSuccess() }).WithTimeout(60*time.Second).
			Should(BeTemporally(">", back), "the client through the Service is served again")
		time.Sleep(2 * time.Second)
		figure("kill of active container → client gap through the Service", load.LongestGapSince(killed))
		Expect(load.Lost()).To(BeZero(), "seats lost in the failover")
		Expect(watcher.MaxServing()).To(BeNumerically("<=", 1), "two members served at once")

		By("the killed container restarts and the primary fails back")
		_, err = watcher.WaitFor(ctx, "a", 3*time.Minute)
		Expect(err).NotTo(HaveOccurred())
		// The kubelet reports the restart on its own schedule.
		Eventually(func() int32 {
			restarts := int32(0)
			if env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, "a")}, pod) == nil {
				for _, s := range pod.Status.ContainerStatuses {
					restarts += s.RestartCount
				}
			}
			return restarts
		}).WithTimeout(60*time.Second).Should(BeNumerically(">=", 1), "the kubelet restarted the killed container")
		time.Sleep(2 * time.Second)
		Expect(load.Lost()).To(BeZero(), "seats lost in the failback")
		Expect(watcher.MaxServing()).To(BeNumerically("<=", 1), "two members served at once")
		n, lastErr := load.Failures()
		fmt.Fprintf(GinkgoWriter, "Service client: %d failed requests, last: %v\n", n, lastErr)
	})
})

var _ = Describe("Node failure", Label("realnode"), func() {
	// Each member on a node of its own, the operator on node 0 beside the
	// tertiary: the node of the active member a fails as a whole (kubelet,
	// containerd and containers frozen, its network cut), then comes back.
	It("keeps serving when the active member's node fails, lets the member wait for its node, and never serves twice when the node returns", func(ctx SpecContext) {
		ns, err := env.Namespace(ctx, "nodeloss")
		Expect(err).NotTo(HaveOccurred())
		name := "lic"
		nodes := map[string]string{"a": "realcluster-node-1", "b": "realcluster-node-2", "c": harness.OperatorNode}
		_, err = env.CreateTriad(ctx, ns, name, func(t *licensehav1.LicenseTriad) {
			t.Spec.Failover.FailbackDelaySeconds = 5
			for i := range t.Spec.Members {
				m := &t.Spec.Members[i]
				m.NodeSelector = map[string]string{"kubernetes.io/hostname": nodes[m.Name]}
			}
		})
		Expect(err).NotTo(HaveOccurred())
		_, err = env.WaitTriad(ctx, ns, name, 3*time.Minute, func(t *licensehav1.LicenseTriad) bool {
			return t.Status.Phase == licensehav1.TriadActive && t.Status.Quorum == "3/3" &&
				meta.IsStatusConditionTrue(t.Status.Conditions, licensehav1.ConditionReady)
		})
		Expect(err).NotTo(HaveOccurred())
		podA := &corev1.Pod{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, "a")}, podA)).To(Succeed())
		Expect(podA.Spec.NodeName).To(Equal(nodes["a"]))

		watcher, load := watchThroughService(ctx, ns, name, "realnode-nodeloss")

		By("failing the node of the active member a")
		down := time.Now()
		Expect(env.Fault(ctx, "node-down", nodes["a"])).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { _ = env.Fault(ctx, "node-up", nodes["a"]) })
		back, who := servedAgain(watcher, down, 60*time.Second, "a member serves again after the node failed")
		Expect(who).To(Equal("b"), "the secondary takes over (the tertiary never serves)")
		figure("node of the active fails → the secondary serves", back.Sub(down))
		Eventually(func() time.Time { return load.LastSuccess() }).WithTimeout(60*time.Second).
			Should(BeTemporally(">", back), "the client through the Service is served again")
		figure("node of the active fails → client gap through the Service", load.LongestGapSince(down))

		By("the node goes NotReady; the member waits for it")
		node := &corev1.Node{}
		Eventually(func() corev1.ConditionStatus {
			if env.Client.Get(ctx, client.ObjectKey{Name: nodes["a"]}, node) != nil {
				return ""
			}
			for _, c := range node.Status.Conditions {
				if c.Type == corev1.NodeReady {
					return c.Status
				}
			}
			return ""
		}).WithTimeout(90 * time.Second).WithPolling(500 * time.Millisecond).ShouldNot(Equal(corev1.ConditionTrue))
		figure("node fails → NotReady in the API", time.Since(down))
		// The member's pod stays bound to its node: nobody can stop what
		// may still run there, so it is not recreated elsewhere while the
		// node is away (docs/operations.md, node failure).
		Consistently(func() string {
			p := &corev1.Pod{}
			if env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, "a")}, p) != nil {
				return "gone"
			}
			return string(p.UID)
		}).WithTimeout(20*time.Second).WithPolling(time.Second).Should(Equal(string(podA.UID)), "a's pod is the same pod")
		t := &licensehav1.LicenseTriad{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, t)).To(Succeed())
		Expect(t.Status.Quorum).To(Equal("2/3"), "a is out of the quorum")
		Expect(meta.IsStatusConditionTrue(t.Status.Conditions, licensehav1.ConditionReady)).To(BeTrue(), "the triad serves")
		Expect(meta.IsStatusConditionTrue(t.Status.Conditions, licensehav1.ConditionDegraded)).To(BeTrue(), "the triad has lost redundancy")

		By("the node comes back: a, thawed, never serves beside b; the primary fails back")
		up := time.Now()
		Expect(env.Fault(ctx, "node-up", nodes["a"])).To(Succeed())
		_, err = watcher.WaitFor(ctx, "a", 3*time.Minute)
		Expect(err).NotTo(HaveOccurred(), "the primary serves again after its node returned")
		figure("node returns → the primary serves again (failback delay 5 s)", time.Since(up))
		time.Sleep(2 * time.Second)
		Expect(watcher.MaxServing()).To(BeNumerically("<=", 1), "two members served at once: %v", watcher.History())
		Expect(watcher.Overlap()).To(BeZero())
		Expect(load.Lost()).To(BeZero(), "seats lost")
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, "a")}, podA)).To(Succeed())
		Expect(podA.Spec.NodeName).To(Equal(nodes["a"]))
	})
})

// servedAgain waits until the watcher saw service return after a fault at
// t, and returns when and who.
func servedAgain(watcher *probe.Watcher, t time.Time, timeout time.Duration, what string) (time.Time, string) {
	GinkgoHelper()
	var back time.Time
	var who string
	Eventually(func() bool {
		var ok bool
		_, back, who, ok = watcher.Outage(t, 5*time.Second)
		return ok
	}).WithTimeout(timeout).WithPolling(100*time.Millisecond).Should(BeTrue(), what)
	return back, who
}

// watchThroughService starts a watcher on the triad's members and a client
// holding seats through the triad's Service, and waits until the primary
// serves and the client holds its seats.
func watchThroughService(ctx context.Context, ns, name, clientID string) (*probe.Watcher, *probe.Load) {
	GinkgoHelper()
	svc := &corev1.Service{}
	Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc)).To(Succeed())
	url := "http://" + svc.Spec.ClusterIP + ":" + strconv.Itoa(licensehav1.DefaultServerPort)
	targets, err := env.Targets(ctx, ns, name, "a", "b", "c")
	Expect(err).NotTo(HaveOccurred())
	runCtx, cancel := context.WithCancel(context.Background())
	DeferCleanup(cancel)
	watcher := probe.NewWatcher(targets, 50*time.Millisecond)
	go watcher.Run(runCtx)
	_, err = watcher.WaitFor(ctx, "a", 60*time.Second)
	Expect(err).NotTo(HaveOccurred(), "the primary serves once the triad is Active")
	logger := slog.New(slog.NewTextHandler(GinkgoWriter, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var load *probe.Load
	Eventually(func() error {
		var err error
		load, err = probe.StartLoad(runCtx, lhclient.Config{Endpoints: []string{url}, ClientID: clientID, Logger: logger},
			"LIC-LIC", 5, 50*time.Millisecond)
		return err
	}).WithTimeout(60 * time.Second).Should(Succeed())
	time.Sleep(2 * time.Second)
	return watcher, load
}

// checkMemberPod checks a running member pod: the spec asks for a
// non-root user, a read-only root filesystem, probes and an init
// container; the status and the container's processes on this host show
// that the real kubelet and runc did so.
func checkMemberPod(p *corev1.Pod) {
	GinkgoHelper()
	Expect(p.Spec.NodeName).To(HavePrefix("realcluster-node-"))
	Expect(p.Spec.InitContainers).NotTo(BeEmpty(), "member pods have an init container")
	// The chart passes no --image: the operator gave the members the image
	// it read from its own pod, with the chart's pull policy.
	Expect(p.Spec.InitContainers[0].Image).To(Equal(harness.Image))
	Expect(p.Spec.InitContainers[0].ImagePullPolicy).To(Equal(corev1.PullNever))
	for _, s := range p.Status.InitContainerStatuses {
		Expect(s.State.Terminated).NotTo(BeNil(), "init container %s finished", s.Name)
		Expect(s.State.Terminated.ExitCode).To(BeZero(), "init container %s succeeded", s.Name)
	}
	sc := p.Spec.SecurityContext
	Expect(sc).NotTo(BeNil())
	Expect(sc.RunAsNonRoot).To(HaveValue(BeTrue()))
	for _, c := range p.Spec.Containers {
		Expect(c.Image).To(Equal(harness.Image))
		Expect(c.SecurityContext).NotTo(BeNil())
		Expect(c.SecurityContext.ReadOnlyRootFilesystem).To(HaveValue(BeTrue()), "container %s", c.Name)
	}
	probed := false
	for _, c := range p.Spec.Containers {
		probed = probed || c.ReadinessProbe != nil || c.LivenessProbe != nil
	}
	Expect(probed).To(BeTrue(), "member containers have probes")
	Expect(p.Status.ContainerStatuses).NotTo(BeEmpty())
	for _, s := range p.Status.ContainerStatuses {
		Expect(s.State.Running).NotTo(BeNil(), "container %s runs", s.Name)
		Expect(s.Ready).To(BeTrue(), "container %s is ready (its readiness probe passes)", s.Name)
	}
	// The containers' processes: not root, and "/" mounted read-only.
	procs := harness.PodProcesses(string(p.UID))
	Expect(procs).NotTo(BeEmpty(), "processes of pod %s on this host", p.Name)
	checked := 0
	for _, pid := range procs {
		comm, _ := os.ReadFile(filepath.Join("/proc", pid, "comm"))
		if strings.TrimSpace(string(comm)) == "pause" {
			continue
		}
		Expect(procUID(pid)).NotTo(Equal("0"), "process %s (%s) runs as root", pid, strings.TrimSpace(string(comm)))
		Expect(rootMountOptions(pid)).To(ContainElement("ro"), "process %s (%s): / is writable", pid, strings.TrimSpace(string(comm)))
		checked++
	}
	Expect(checked).To(BeNumerically(">", 0))
}

func procUID(pid string) string {
	f, err := os.Open(filepath.Join("/proc", pid, "status"))
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "Uid:"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

func rootMountOptions(pid string) []string {
	data, err := os.ReadFile(filepath.Join("/proc", pid, "mountinfo"))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 5 && f[4] == "/" {
			return strings.Split(f[5], ",")
		}
	}
	return nil
}
