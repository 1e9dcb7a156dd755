package e2e

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func metaName(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

var _ = Describe("Soak", Label("e2e", "soak"), func() {
	It("survives 100 random faults in a row", func(ctx SpecContext) {
		r := startTriad(ctx, "soak", nil)
		DeferCleanup(func(ctx SpecContext) {
			for _, m := range triadMembers {
				_ = env.Fault(ctx, "resume", r.pod(m))
			}
			_ = env.Fault(ctx, "heal")
		})
		seed := uint64(time.Now().UnixNano())
		GinkgoWriter.Printf("soak seed %d\n", seed)
		rng := rand.New(rand.NewPCG(seed, 1))
		lastKill := map[string]time.Time{}
		start := time.Now()
		counts := map[string]int{}
		for i := 0; i < 100 && time.Since(start) < 9*time.Minute; i++ {
			m := triadMembers[rng.IntN(3)]
			hold := time.Duration(500+rng.IntN(2000)) * time.Millisecond
			kind := "pause"
			switch p := rng.IntN(100); {
			case p < 15 && time.Since(lastKill[m]) > 90*time.Second:
				kind = "kill"
			case p < 55:
				kind = "partition"
			}
			// A member in restart back-off after a kill has no process to
			// signal: such a fault is skipped (and not counted).
			do := func(args ...string) bool {
				err := env.Fault(ctx, args...)
				if err != nil && strings.Contains(err.Error(), "no running") {
					return false
				}
				Expect(err).NotTo(HaveOccurred())
				return true
			}
			ok := true
			switch kind {
			case "kill":
				lastKill[m] = time.Now()
				ok = do("kill", r.pod(m))
			case "pause":
				if ok = do("pause", r.pod(m)); ok {
					time.Sleep(hold)
					do("resume", r.pod(m))
				}
			case "partition":
				o := triadMembers[(slices_index(m)+1+rng.IntN(2))%3]
				if ok = do("partition", r.pod(m), r.pod(o)); ok {
					time.Sleep(hold)
					do("heal", r.pod(m))
				}
			}
			if !ok {
				counts["skipped"]++
				i--
				time.Sleep(time.Second)
				continue
			}
			counts[kind]++
			r.invariants()
			time.Sleep(time.Duration(300+rng.IntN(1200)) * time.Millisecond)
		}
		total := counts["kill"] + counts["pause"] + counts["partition"]
		GinkgoWriter.Printf("soak: %d faults (%v) in %s\n", total, counts, time.Since(start).Round(time.Second))
		AddReportEntry("soak faults", counts)
		Expect(total).To(BeNumerically(">=", 100))
		figure("soak: longest time nobody served", r.longestOutageSince(start))
		figure("soak: longest client gap", r.load.LongestGapSince(start))
		after := time.Now()
		_, at := r.waitServing(ctx, 3*time.Minute)
		figure("soak: after the last fault → service", max(0, at.Sub(after)))
		r.backToNormal(ctx)
		r.invariants()
	})
})

func slices_index(m string) int {
	for i, x := range triadMembers {
		if x == m {
			return i
		}
	}
	return 0
}

// checkLogsForSecrets fails when a secret value the suite saw (admin
// tokens, licence files and their signatures) is in the operator's log or
// a pod's log still on the nodes. The AfterSuite runs it; each spec's pods'
// logs are checked before its namespace goes (specNamespace).
func checkLogsForSecrets() {
	GinkgoHelper()
	files := []string{filepath.Join(env.StateDir, "manager.log")}
	files = append(files, logFiles(filepath.Join(env.StateDir, "logs"))...)
	for _, dir := range env.PodLogDirs() {
		files = append(files, logFiles(dir)...)
	}
	checkFilesForSecrets(files)
}

// namespaceLogFiles lists the log files of the pods of namespace ns on the
// nodes (directories <namespace>_<pod>... on both kinds of node).
func namespaceLogFiles(ns string) []string {
	var files []string
	for _, dir := range env.PodLogDirs() {
		pods, _ := filepath.Glob(filepath.Join(dir, ns+"_*"))
		for _, p := range pods {
			files = append(files, logFiles(p)...)
		}
	}
	return files
}

// logFiles lists the files under dir.
func logFiles(dir string) []string {
	var files []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	return files
}

func checkFilesForSecrets(files []string) {
	GinkgoHelper()
	secretsMu.Lock()
	defer secretsMu.Unlock()
	if len(secrets) == 0 {
		return
	}
	checked := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		checked++
		text := string(data)
		for what, v := range secrets {
			needles := []string{v}
			// A licence file: also look for its signature alone.
			var lic struct {
				Signature string `json:"signature"`
			}
			if json.Unmarshal([]byte(v), &lic) == nil && len(lic.Signature) >= 16 {
				needles = append(needles, lic.Signature)
			}
			for _, n := range needles {
				Expect(strings.Contains(text, n)).To(BeFalse(), "%s leaks (part of) %s", f, what)
			}
		}
	}
	GinkgoWriter.Printf("checked %d secret values against %d log files\n", len(secrets), checked)
}
