package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
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
	// Rewritten counts the times the stand-in found its state file changed
	// by someone else while it ran.
	Rewritten int64 `json:"rewritten"`
}

// vendorWatch polls every member's stand-in every 100 ms and records who
// answers: two answering in one round is an overlap.
type vendorWatch struct {
	mu   sync.Mutex
	urls map[string]string
	last map[string]vendorState // the latest answer of each member
	// rewritten is the most rewrites of its state file any answer of a
	// member reported.
	rewritten map[string]int64
	serving   []string
	since     time.Time // when serving last changed
	overlap   int
	log       []string
	// changes records when the number of members answering changed.
	changes []servingChange
}

type servingChange struct {
	at      time.Time
	serving int
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
			if st.Rewritten > w.rewritten[m] {
				w.rewritten[m] = st.Rewritten
			}
		}
		if len(serving) > 1 {
			w.overlap++
		}
		if strings.Join(serving, ",") != strings.Join(w.serving, ",") {
			w.serving, w.since = serving, time.Now()
			w.changes = append(w.changes, servingChange{w.since, len(serving)})
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
func (w *vendorWatch) setURLs(ctx context.Context, ns, name string, members ...string) {
	GinkgoHelper()
	Eventually(func() error {
		targets, err := env.Targets(ctx, ns, name, members...)
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

// refreshURLs points the watch at the pod IPs of those members that have
// one now (members' pods are being replaced).
func (w *vendorWatch) refreshURLs(ctx context.Context, ns, name string, members ...string) {
	for _, m := range members {
		if targets, err := env.Targets(ctx, ns, name, m); err == nil {
			w.mu.Lock()
			w.urls[m] = targets[0].URL
			w.mu.Unlock()
		}
	}
}

// helper2 is one more service of the stand-in, added by an edit.
var helper2 = licensehav1.ServerService{Name: "helper2", Command: []string{"/usr/local/bin/vendorstandin", "helper", "--data-dir=" + group.DefaultDataPath}}

// rollServices runs edit (which adds helper2 to the group's services) and
// waits until every member's pod was replaced and want (any member when
// empty) serves alone running server, helper, helper2 and the child, from
// at least the state reached before the edit.
func (w *vendorWatch) rollServices(ctx context.Context, ns, name, want string, members []string, edit func()) {
	GinkgoHelper()
	uids := map[string]types.UID{}
	for _, m := range members {
		p := &corev1.Pod{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, m)}, p)).To(Succeed())
		uids[m] = p.UID
	}
	_, st, _ := w.alone()
	beforeEdit := st.Counter
	start := time.Now()
	edit()
	Eventually(func() error {
		w.refreshURLs(ctx, ns, name, members...)
		for _, m := range members {
			p := &corev1.Pod{}
			if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, m)}, p); err != nil || p.UID == uids[m] {
				return fmt.Errorf("member %s not rolled yet", m)
			}
		}
		who, s, ok := w.alone()
		if !ok || s.Counter <= s.StartedFrom || (want != "" && who != want) {
			return fmt.Errorf("%s does not serve alone yet", want)
		}
		if procs := standInProcesses(ctx, ns, group.PodName(name, who)); len(procs) != 4 {
			return fmt.Errorf("the active %s runs %v, want server, helper, helper2 and the child", who, procs)
		}
		return nil
	}, 5*time.Minute, 500*time.Millisecond).Should(Succeed(), "%s", w.history())
	figure(fmt.Sprintf("vendor stand-in, %d members: services edit → every member rolled, one serving with the new service", len(members)), time.Since(start))
	gap := w.longestGapSince(start)
	figure(fmt.Sprintf("vendor stand-in, %d members: services edit → longest time nobody served", len(members)), gap)
	// The stand-in answers while it ignores SIGTERM; after it exits the
	// other side takes over within about a second.
	Expect(gap).To(BeNumerically("<", 5*time.Second), "nobody served for %s during the roll: %s", gap, w.history())
	_, st, _ = w.alone()
	Expect(st.StartedFrom).To(BeNumerically(">=", beforeEdit), "the roll lost state: the active started from %d, %d was reached before", st.StartedFrom, beforeEdit)
}

// servesAlone waits until want (any member when empty) serves alone and
// counts, and returns its state.
func (w *vendorWatch) servesAlone(want string, timeout time.Duration) vendorState {
	GinkgoHelper()
	var st vendorState
	Eventually(func() bool {
		who, s, ok := w.alone()
		st = s
		return ok && (want == "" || who == want) && s.Counter > s.StartedFrom
	}, timeout, 100*time.Millisecond).Should(BeTrue(), "%s serving alone: %s", want, w.history())
	return st
}

// longestGapSince is the longest time since t that no member answered.
func (w *vendorWatch) longestGapSince(t time.Time) time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	var longest time.Duration
	var from time.Time
	for _, c := range w.changes {
		switch {
		case c.serving == 0 && from.IsZero():
			from = c.at
		case c.serving > 0 && !from.IsZero():
			if c.at.After(t) {
				longest = max(longest, c.at.Sub(laterOf(from, t)))
			}
			from = time.Time{}
		}
	}
	if !from.IsZero() {
		longest = max(longest, time.Since(laterOf(from, t)))
	}
	return longest
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// lastOf is the counter member last answered with.
func (w *vendorWatch) lastOf(member string) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[member].Counter
}

// rewrites is, per member, the most rewrites under its running server seen.
func (w *vendorWatch) rewrites() map[string]int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string]int64{}
	for m, n := range w.rewritten {
		if n > 0 {
			out[m] = n
		}
	}
	return out
}

// overlaps is how many polling rounds saw two stand-ins answer.
func (w *vendorWatch) overlaps() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.overlap
}

// followLog follows a pod's log until ctx ends — across container
// restarts and pods of the same name — and prints it when the spec fails
// (a deleted pod's log goes with it).
func followLog(ctx context.Context, ns, pod, label string) {
	GinkgoHelper()
	out := filepath.Join(GinkgoT().TempDir(), label+".log")
	f, err := os.Create(out)
	Expect(err).NotTo(HaveOccurred())
	go func() {
		defer f.Close()
		var since time.Time
		for ctx.Err() == nil {
			args := []string{"-n", ns, "logs", "-f", pod, "-c", "server"}
			if !since.IsZero() {
				args = append(args, "--since-time="+since.UTC().Format(time.RFC3339))
			}
			cmd := exec.CommandContext(ctx, filepath.Join(env.K8sBin, "kubectl"), args...)
			cmd.Env = append(os.Environ(), "KUBECONFIG="+env.Kubeconfig)
			cmd.Stdout, cmd.Stderr = f, f
			_ = cmd.Run()
			since = time.Now()
			fmt.Fprintf(f, "--- %s: following again ---\n", since.Format("15:04:05.000"))
			time.Sleep(500 * time.Millisecond)
		}
	}()
	DeferCleanup(func() {
		if CurrentSpecReport().Failed() {
			b, _ := os.ReadFile(out)
			GinkgoWriter.Printf("--- log of %s ---\n%s\n", label, b)
		}
	})
}

// dumpLogsOnFailure prints, when the spec fails, the logs of the pods as
// they are then (followLog keeps those of pods replaced meanwhile).
func dumpLogsOnFailure(ns string, pods ...string) {
	DeferCleanup(func(ctx SpecContext) {
		if !CurrentSpecReport().Failed() {
			return
		}
		for _, pod := range pods {
			out, _ := env.Kubectl(ctx, "-n", ns, "logs", pod, "-c", "server")
			GinkgoWriter.Printf("--- log of %s at the end ---\n%s\n", pod, out)
		}
	})
}

// expectNoZombies checks that no stand-in process of the pods is a zombie.
func expectNoZombies(ctx context.Context, ns string, pods ...string) {
	GinkgoHelper()
	for _, pod := range pods {
		for _, p := range standInProcesses(ctx, ns, pod) {
			Expect(p).NotTo(HavePrefix("Z"), "a zombie in %s", pod)
		}
	}
}

// standInServer is the group's server spec running the stand-in (ignoring
// SIGTERM for 4 s) with its helper service.
func standInServer(srv *licensehav1.ServerSpec) {
	bin := "/usr/local/bin/vendorstandin"
	srv.Image = vendorImage
	srv.ImagePullPolicy = corev1.PullNever
	srv.Command = []string{bin, "serve", "--data-dir=" + group.DefaultDataPath, "--listen=:5160", "--term-delay=4s"}
	srv.Services = []licensehav1.ServerService{
		{Name: "helper", Command: []string{bin, "helper", "--data-dir=" + group.DefaultDataPath}},
	}
}

var _ = Describe("A vendor server stand-in", Label("e2e"), func() {
	It("is fenced, fails over and keeps its state files through handovers and a crash", func(ctx SpecContext) {
		Expect(env.ImportImage(ctx, filepath.Join(env.Root, "bin", "e2e-vendor-image.tar"))).To(Succeed())
		ns := specNamespace(ctx, "vendor")
		const name = "lm"
		_, err := env.CreateTriad(ctx, ns, name, func(t *licensehav1.LicenseTriad) {
			standInServer(&t.Spec.Server)
			t.Spec.Sync.IntervalSeconds = 1
			t.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "vendor/db"}}
			t.Spec.Failover.FailbackDelaySeconds = int32(failbackDelay / time.Second)
		})
		Expect(err).NotTo(HaveOccurred())
		_, err = env.WaitTriad(ctx, ns, name, 120*time.Second, func(t *licensehav1.LicenseTriad) bool {
			return t.Status.Quorum == "3/3" && t.Status.ActiveMember != ""
		})
		Expect(err).NotTo(HaveOccurred())

		w := &vendorWatch{urls: map[string]string{}, last: map[string]vendorState{}, rewritten: map[string]int64{}}
		w.setURLs(ctx, ns, name, triadMembers...)
		wctx, _ := bg()
		go w.run(wctx)
		DeferCleanup(func() { GinkgoWriter.Printf("stand-in history: %s\n", w.history()) })

		By("serving from the primary only: the other members' processes do not run")
		w.servesAlone("a", 60*time.Second)
		Eventually(func() []string { return standInProcesses(ctx, ns, group.PodName(name, "a")) }, 10*time.Second, 200*time.Millisecond).
			Should(HaveLen(3), "server, helper service and the forked child run on the active member")
		for _, m := range []string{"b", "c"} {
			Expect(standInProcesses(ctx, ns, group.PodName(name, m))).To(BeEmpty(), "a fenced member runs vendor processes")
		}
		Consistently(func() int64 { return w.lastOf("a") }, 3*time.Second, time.Second).Should(BeNumerically(">", 0))

		By("a planned handover (the active pod is deleted): the stand-in ignores SIGTERM, the taker starts from its last state")
		// The deleted pod's log goes with it: follow it, printed on failure.
		followLog(wctx, ns, group.PodName(name, "a"), "a")
		followLog(wctx, ns, group.PodName(name, "b"), "b")
		dumpLogsOnFailure(ns, group.PodName(name, "a"), group.PodName(name, "b"), group.PodName(name, "c"))
		beforeDelete := w.lastOf("a")
		oldA := &corev1.Pod{}
		Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, "a")}, oldA)).To(Succeed())
		start := time.Now()
		Expect(env.Client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: group.PodName(name, "a")}})).To(Succeed())
		st := w.servesAlone("b", 30*time.Second)
		figure("vendor stand-in: planned handover (pod deleted → b serves)", time.Since(start))
		Expect(st.StartedFrom).To(BeNumerically(">=", beforeDelete),
			"b started from %d, a had counted to %d before its pod was deleted", st.StartedFrom, beforeDelete)

		By("failback to the new pod a: it starts from b's state")
		Eventually(func() bool {
			p := &corev1.Pod{}
			err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, "a")}, p)
			return err == nil && p.UID != oldA.UID && p.Status.PodIP != ""
		}, 90*time.Second, 200*time.Millisecond).Should(BeTrue(), "the operator recreates pod a")
		w.setURLs(ctx, ns, name, triadMembers...)
		followLog(wctx, ns, group.PodName(name, "a"), "new a")
		Eventually(func() bool { who, _, ok := w.alone(); return ok && who == "a" }, 90*time.Second, 100*time.Millisecond).
			Should(BeTrue(), "failback to a: %s", w.history())
		st = w.servesAlone("a", 10*time.Second)
		Expect(st.StartedFrom).To(BeNumerically(">=", w.lastOf("b")-1), "a started from %d, b had counted to %d", st.StartedFrom, w.lastOf("b"))
		Eventually(func() []string { return standInProcesses(ctx, ns, group.PodName(name, "b")) }, 10*time.Second, 200*time.Millisecond).
			Should(BeEmpty(), "b's processes (server, helper, child) are gone after the failback, no zombies left")

		By("a crash of the active member: another serves from a state at most a sync interval old")
		Consistently(func() int64 { return w.lastOf("a") }, 2*time.Second, time.Second).Should(BeNumerically(">", st.StartedFrom))
		beforeCrash := w.lastOf("a")
		start = time.Now()
		Expect(env.Fault(ctx, "kill", harness.PodName(ns, name, "a"))).To(Succeed())
		Eventually(func() bool { who, _, ok := w.alone(); return ok && who != "a" }, 30*time.Second, 100*time.Millisecond).
			Should(BeTrue(), "another member serves after a's crash: %s", w.history())
		figure("vendor stand-in: crash (kill → another serves)", time.Since(start))
		_, st, _ = w.alone()
		// The counter steps every 100 ms and the sync interval is 1 s.
		Expect(st.StartedFrom).To(BeNumerically(">=", beforeCrash-25), "started from %d after a crash at %d", st.StartedFrom, beforeCrash)

		By("an edit of the services rolls every member: never two serving, the state carried on, the new service runs")
		w.rollServices(ctx, ns, name, "", triadMembers, func() {
			Expect(retry.RetryOnConflict(retry.DefaultRetry, func() error {
				t := &licensehav1.LicenseTriad{}
				if err := env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, t); err != nil {
					return err
				}
				t.Spec.Server.Services = append(t.Spec.Server.Services, helper2)
				return env.Client.Update(ctx, t)
			})).To(Succeed())
		})

		Expect(w.overlaps()).To(BeZero(), "two stand-ins answered at once: %s", w.history())
		Expect(w.rewrites()).To(BeEmpty(), "the file sync wrote under a running stand-in")
		expectNoZombies(ctx, ns, group.PodName(name, "a"), group.PodName(name, "b"), group.PodName(name, "c"))
	})
})

var _ = Describe("A vendor server stand-in in a backup pair", Label("e2e"), func() {
	It("syncs from the serving side: switchovers, a crashed main and a rolled main lose no state", func(ctx SpecContext) {
		Expect(env.ImportImage(ctx, filepath.Join(env.Root, "bin", "e2e-vendor-image.tar"))).To(Succeed())
		ns := specNamespace(ctx, "vendor-pair")
		const name = "lm"
		createPairWith(ctx, ns, name, licensehav1.ActivePassive, func(p *licensehav1.LicenseBackupPair) {
			standInServer(&p.Spec.Server)
			p.Spec.Roles = licensehav1.RolesFixed
			p.Spec.Sync.IntervalSeconds = 1
			p.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "vendor/db"}}
		})
		key := client.ObjectKey{Namespace: ns, Name: name}
		mainPod, backupPod := group.PodName(name, "main"), group.PodName(name, "backup")
		w := &vendorWatch{urls: map[string]string{}, last: map[string]vendorState{}, rewritten: map[string]int64{}}
		w.setURLs(ctx, ns, name, "main", "backup")
		wctx, _ := bg()
		go w.run(wctx)
		DeferCleanup(func() { GinkgoWriter.Printf("stand-in history: %s\n", w.history()) })
		followLog(wctx, ns, mainPod, "main")
		followLog(wctx, ns, backupPod, "backup")
		dumpLogsOnFailure(ns, mainPod, backupPod)

		By("serving from the main only")
		w.servesAlone("main", 120*time.Second)
		Eventually(func() []string { return standInProcesses(ctx, ns, mainPod) }, 10*time.Second, 200*time.Millisecond).
			Should(HaveLen(3), "server, helper service and the forked child run on the main")
		Expect(standInProcesses(ctx, ns, backupPod)).To(BeEmpty(), "the passive backup runs vendor processes")
		Consistently(func() int64 { return w.lastOf("main") }, 3*time.Second, time.Second).Should(BeNumerically(">", 0))

		By("a switchover to the backup: it starts from what the main's server wrote as it stopped")
		start := time.Now()
		editPair(ctx, key, func(p *licensehav1.LicenseBackupPair) { p.Spec.PreferredSide = licensehav1.SideBackup })
		st := w.servesAlone("backup", 60*time.Second)
		figure("vendor stand-in pair: switchover edit → backup serves", time.Since(start))
		// The main counted on while it ignored SIGTERM; its last counter is
		// at most one step (100 ms) ahead of the file it left.
		mainLast := w.lastOf("main")
		Expect(st.StartedFrom).To(BeNumerically(">=", mainLast-1),
			"the backup started from %d, the main had counted to %d", st.StartedFrom, mainLast)
		Eventually(func() []string { return standInProcesses(ctx, ns, mainPod) }, 10*time.Second, 200*time.Millisecond).
			Should(BeEmpty(), "the main's processes are gone once the backup serves")

		By("while the backup serves it publishes; nothing is written under it, and the main, standing by, follows")
		mainSB, err := sandboxOf(ctx, ns, mainPod)
		Expect(err).NotTo(HaveOccurred())
		counterFile := filepath.Join(mainSB.volume("data"), "vendor", "db", "counter")
		Eventually(func() int64 {
			b, _ := os.ReadFile(counterFile)
			n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
			return n
		}, 10*time.Second, 200*time.Millisecond).Should(BeNumerically(">=", st.StartedFrom+10), "the main's folder does not follow the serving backup")
		who, now, ok := w.alone()
		Expect(ok && who == "backup" && now.StartedFrom == st.StartedFrom && now.Rewritten == 0).To(BeTrue(),
			"the backup keeps serving its own files: %s, rewrites %v", w.history(), w.rewrites())

		By("switching back: the main serves from what the backup's server wrote last, the backup's processes all stop")
		start = time.Now()
		editPair(ctx, key, func(p *licensehav1.LicenseBackupPair) { p.Spec.PreferredSide = licensehav1.SideMain })
		st = w.servesAlone("main", 60*time.Second)
		figure("vendor stand-in pair: switchover edit → main serves", time.Since(start))
		backupLast := w.lastOf("backup")
		Expect(st.StartedFrom).To(BeNumerically(">=", backupLast-1), "the main started from %d, the backup had counted to %d", st.StartedFrom, backupLast)
		Eventually(func() []string { return standInProcesses(ctx, ns, backupPod) }, 10*time.Second, 200*time.Millisecond).
			Should(BeEmpty(), "the backup's processes (server, helper, child) are gone")

		By("a crash of the main: the backup serves from a state at most a sync interval old")
		Consistently(func() int64 { return w.lastOf("main") }, 2*time.Second, time.Second).Should(BeNumerically(">", st.StartedFrom))
		beforeCrash := w.lastOf("main")
		start = time.Now()
		Expect(env.Fault(ctx, "kill", harness.PodName(ns, name, "main"))).To(Succeed())
		st = w.servesAlone("backup", 30*time.Second)
		figure("vendor stand-in pair: main killed → backup serves", time.Since(start))
		// The counter steps every 100 ms and the sync interval is 1 s.
		Expect(st.StartedFrom).To(BeNumerically(">=", beforeCrash-25), "the backup started from %d after a crash at %d", st.StartedFrom, beforeCrash)

		By("the main back (roles Fixed): it serves again from the backup's last state, nothing of the backup keeps running")
		st = w.servesAlone("main", 120*time.Second)
		backupLast = w.lastOf("backup")
		Expect(st.StartedFrom).To(BeNumerically(">=", backupLast-1), "the restarted main started from %d, the backup had counted to %d", st.StartedFrom, backupLast)
		Eventually(func() []string { return standInProcesses(ctx, ns, backupPod) }, 10*time.Second, 200*time.Millisecond).
			Should(BeEmpty(), "the backup's processes are gone after the failback")

		By("an edit of the services rolls both sides: never both serving, the main back with the new service and its state")
		w.rollServices(ctx, ns, name, "main", []string{"main", "backup"}, func() {
			editPair(ctx, key, func(p *licensehav1.LicenseBackupPair) {
				p.Spec.Server.Services = append(p.Spec.Server.Services, helper2)
			})
		})

		Expect(w.overlaps()).To(BeZero(), "both stand-ins answered at once: %s", w.history())
		Expect(w.rewrites()).To(BeEmpty(), "the file sync wrote under a running stand-in")
		expectNoZombies(ctx, ns, mainPod, backupPod)
	})
})
