package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/test/harness"
)

// vendorImage is the stand-in vendor server's image (make e2e-vendor-image).
const vendorImage = "localhost/licenseha/e2e-vendor:dev"

// vendorState is what the stand-in answers on GET /state.
type vendorState struct {
	Member      string `json:"member"`
	Counter     int64  `json:"counter"`
	StartedFrom int64  `json:"startedFrom"`
}

// vendorWatch polls every member's stand-in every 100 ms and records who
// answers: two answering in one round is an overlap.
type vendorWatch struct {
	mu      sync.Mutex
	urls    map[string]string
	last    map[string]vendorState // the latest answer of each member
	serving []string
	since   time.Time // when serving last changed
	overlap int
	log     []string
}

func (w *vendorWatch) run(ctx context.Context) {
	hc := &http.Client{Timeout: 300 * time.Millisecond}
	for ctx.Err() == nil {
		w.mu.Lock()
		urls := map[string]string{}
		for m, u := range w.urls {
			urls[m] = u
		}
		w.mu.Unlock()
		var serving []string
		answers := map[string]vendorState{}
		for m, u := range urls {
			resp, err := hc.Get(u + "/state")
			if err != nil {
				continue
			}
			var st vendorState
			if json.NewDecoder(resp.Body).Decode(&st) == nil {
				serving = append(serving, m)
				answers[m] = st
			}
			resp.Body.Close()
		}
		w.mu.Lock()
		for m, st := range answers {
			w.last[m] = st
		}
		if len(serving) > 1 {
			w.overlap++
		}
		if strings.Join(serving, ",") != strings.Join(w.serving, ",") {
			w.serving, w.since = serving, time.Now()
			w.log = append(w.log, fmt.Sprintf("%s %v", time.Now().Format("15:04:05.000"), serving))
		}
		w.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
}

// alone returns the member that serves alone, if one does.
func (w *vendorWatch) alone() (string, vendorState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.serving) != 1 {
		return "", vendorState{}, false
	}
	return w.serving[0], w.last[w.serving[0]], true
}

func (w *vendorWatch) history() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.log, "; ")
}

// setURLs points the watch at the members' current pod IPs.
func (w *vendorWatch) setURLs(ctx context.Context, ns, name string) {
	GinkgoHelper()
	Eventually(func() error {
		targets, err := env.Targets(ctx, ns, name, triadMembers...)
		if err != nil {
			return err
		}
		w.mu.Lock()
		for _, t := range targets {
			w.urls[t.Name] = t.URL
		}
		w.mu.Unlock()
		return nil
	}, 60*time.Second, 200*time.Millisecond).Should(Succeed())
}

// standInProcesses lists the stand-in's processes (server, helper service,
// forked child) in a member pod, with their state letter.
func standInProcesses(ctx context.Context, ns, pod string) []string {
	p := &corev1.Pod{}
	if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: pod}, p); err != nil {
		return []string{"error: " + err.Error()}
	}
	var out []string
	for _, pid := range harness.PodProcesses(string(p.UID)) {
		cmd, _ := os.ReadFile(filepath.Join("/proc", pid, "cmdline"))
		stat, _ := os.ReadFile(filepath.Join("/proc", pid, "stat"))
		if !strings.Contains(string(stat), "(vendorstandin)") {
			continue // the agent and the pause process
		}
		state := "?"
		if i := strings.LastIndexByte(string(stat), ')'); i > 0 && len(stat) > i+2 {
			state = string(stat[i+2])
		}
		out = append(out, state+" "+strings.ReplaceAll(strings.TrimRight(string(cmd), "\x00"), "\x00", " "))
	}
	return out
}

var _ = Describe("A vendor server stand-in", Label("e2e"), func() {
	It("is fenced, fails over and keeps its state files through handovers and a crash", func(ctx SpecContext) {
		Expect(env.ImportImage(ctx, filepath.Join(env.Root, "bin", "e2e-vendor-image.tar"))).To(Succeed())
		ns := specNamespace(ctx, "vendor")
		const name = "lm"
		bin := "/usr/local/bin/vendorstandin"
		_, err := env.CreateTriad(ctx, ns, name, func(t *licensehav1.LicenseTriad) {
			t.Spec.Server.Image = vendorImage
			t.Spec.Server.ImagePullPolicy = corev1.PullNever
			t.Spec.Server.Command = []string{bin, "serve", "--data-dir=" + group.DefaultDataPath, "--listen=:5160", "--term-delay=4s"}
			t.Spec.Server.Services = []licensehav1.ServerService{
				{Name: "helper", Command: []string{bin, "helper", "--data-dir=" + group.DefaultDataPath}},
			}
			t.Spec.Sync.IntervalSeconds = 1
			t.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "vendor/db"}}
			t.Spec.Failover.FailbackDelaySeconds = int32(failbackDelay / time.Second)
		})
		Expect(err).NotTo(HaveOccurred())
		_, err = env.WaitTriad(ctx, ns, name, 120*time.Second, func(t *licensehav1.LicenseTriad) bool {
			return t.Status.Quorum == "3/3" && t.Status.ActiveMember != ""
		})
		Expect(err).NotTo(HaveOccurred())

		w := &vendorWatch{urls: map[string]string{}, last: map[string]vendorState{}}
		w.setURLs(ctx, ns, name)
		wctx, _ := bg()
		go w.run(wctx)
		DeferCleanup(func() { GinkgoWriter.Printf("stand-in history: %s\n", w.history()) })

		servesAlone := func(want string, timeout time.Duration) vendorState {
			GinkgoHelper()
			var st vendorState
			Eventually(func() bool {
				who, s, ok := w.alone()
				st = s
				return ok && (want == "" || who == want) && s.Counter > s.StartedFrom
			}, timeout, 100*time.Millisecond).Should(BeTrue(), "%s serving alone: %s", want, w.history())
			return st
		}
		lastOf := func(member string) int64 {
			w.mu.Lock()
			defer w.mu.Unlock()
			return w.last[member].Counter
		}

		By("serving from the primary only: the other members' processes do not run")
		servesAlone("a", 60*time.Second)
		Eventually(func() []string { return standInProcesses(ctx, ns, group.PodName(name, "a")) }, 10*time.Second, 200*time.Millisecond).
			Should(HaveLen(3), "server, helper service and the forked child run on the active member")
		for _, m := range []string{"b", "c"} {
			Expect(standInProcesses(ctx, ns, group.PodName(name, m))).To(BeEmpty(), "a fenced member runs vendor processes")
		}
		Consistently(func() int64 { return lastOf("a") }, 3*time.Second, time.Second).Should(BeNumerically(">", 0))

		By("a planned handover (the active pod is deleted): the stand-in ignores SIGTERM, the taker starts from its last state")
		// The deleted pod's log goes with it: follow it, printed on failure.
		followLog := func(member, label string) {
			out := filepath.Join(GinkgoT().TempDir(), label+".log")
			cmd := exec.CommandContext(wctx, filepath.Join(env.K8sBin, "kubectl"), "-n", ns, "logs", "-f", group.PodName(name, member))
			cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
			f, err := os.Create(out)
			Expect(err).NotTo(HaveOccurred())
			cmd.Stdout, cmd.Stderr = f, f
			Expect(cmd.Start()).To(Succeed())
			DeferCleanup(func() {
				if CurrentSpecReport().Failed() {
					b, _ := os.ReadFile(out)
					GinkgoWriter.Printf("--- log of %s ---\n%s\n", label, b)
				}
			})
		}
		followLog("a", "a")
		followLog("b", "b")
		beforeDelete := lastOf("a")
		oldA := &corev1.Pod{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, "a")}, oldA)).To(Succeed())
		start := time.Now()
		Expect(env.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.PodName(name, "a")}})).To(Succeed())
		st := servesAlone("b", 30*time.Second)
		figure("vendor stand-in: planned handover (pod deleted → b serves)", time.Since(start))
		Expect(st.StartedFrom).To(BeNumerically(">=", beforeDelete),
			"b started from %d, a had counted to %d before its pod was deleted", st.StartedFrom, beforeDelete)

		By("failback to the new pod a: it starts from b's state")
		Eventually(func() bool {
			p := &corev1.Pod{}
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, "a")}, p)
			return err == nil && p.UID != oldA.UID && p.Status.PodIP != ""
		}, 90*time.Second, 200*time.Millisecond).Should(BeTrue(), "the operator recreates pod a")
		w.setURLs(ctx, ns, name)
		followLog("a", "new a")
		Eventually(func() bool { who, _, ok := w.alone(); return ok && who == "a" }, 90*time.Second, 100*time.Millisecond).
			Should(BeTrue(), "failback to a: %s", w.history())
		st = servesAlone("a", 10*time.Second)
		Expect(st.StartedFrom).To(BeNumerically(">=", lastOf("b")-1), "a started from %d, b had counted to %d", st.StartedFrom, lastOf("b"))
		Eventually(func() []string { return standInProcesses(ctx, ns, group.PodName(name, "b")) }, 10*time.Second, 200*time.Millisecond).
			Should(BeEmpty(), "b's processes (server, helper, child) are gone after the failback, no zombies left")

		By("a crash of the active member: another serves from a state at most a sync interval old")
		Consistently(func() int64 { return lastOf("a") }, 2*time.Second, time.Second).Should(BeNumerically(">", st.StartedFrom))
		beforeCrash := lastOf("a")
		start = time.Now()
		Expect(env.Fault(ctx, "kill", harness.PodName(ns, name, "a"))).To(Succeed())
		Eventually(func() bool { who, _, ok := w.alone(); return ok && who != "a" }, 30*time.Second, 100*time.Millisecond).
			Should(BeTrue(), "another member serves after a's crash: %s", w.history())
		figure("vendor stand-in: crash (kill → another serves)", time.Since(start))
		_, st, _ = w.alone()
		// The counter steps every 100 ms and the sync interval is 1 s.
		Expect(st.StartedFrom).To(BeNumerically(">=", beforeCrash-25), "started from %d after a crash at %d", st.StartedFrom, beforeCrash)

		w.mu.Lock()
		overlap := w.overlap
		w.mu.Unlock()
		Expect(overlap).To(BeZero(), "two stand-ins answered at once: %s", w.history())
		for _, m := range triadMembers {
			for _, p := range standInProcesses(ctx, ns, group.PodName(name, m)) {
				Expect(p).NotTo(HavePrefix("Z"), "a zombie in member %s", m)
			}
		}
	})
})
