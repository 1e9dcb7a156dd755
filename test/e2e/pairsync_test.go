package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/pkg/server"
	"github.com/licenseha/licenseha/test/probe"
)

// syncBound is the generous bound for a change on the main to reach the
// backup (sync.intervalSeconds is 2).
const syncBound = 30 * time.Second

var _ = Describe("LicenseBackupPair sync", Label("e2e"), func() {
	It("ActiveActive: settings and spec.sync.paths files reach the backup (filters, strict, timestamps)", func(ctx SpecContext) {
		ns := specNamespace(ctx, "pair-sync")
		const name = "pair"
		createPairWith(ctx, ns, name, licensehav1.ActiveActive, func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Sync = licensehav1.PairSyncSpec{
				IntervalSeconds:    2,
				Strict:             true,
				PreserveTimestamps: ptr.To(true),
				Paths:              []licensehav1.SyncPath{{Path: "settings", Include: []string{"*.xml"}, Exclude: []string{"*.tmp"}}},
			}
		})
		ts := pairTargets(ctx, ns, name)
		bctx, _ := bg()
		w := probe.NewWatcher(ts, 50*time.Millisecond)
		go w.Run(bctx)
		waitServingSet(ctx, w, 90*time.Second, "main", "backup")

		// 1. Settings: set on the main through its admin API, read back on the backup.
		mainAdmin := adminClient(ctx, ns, name, "main")
		backupAdmin := adminClient(ctx, ns, name, "backup")
		want := server.Settings{
			Access:          server.AccessRules{DenyUsers: []string{"e2e-denied-*"}, AllowAddresses: []string{"10.0.0.0/8"}},
			PrinterGroups:   map[string][]string{"floor1": {"P1-*"}},
			Partitions:      map[string]map[string]int{"floor1": {mainLicence: 2}},
			AllowedPrinters: []string{"P*"},
		}
		set := time.Now()
		Expect(mainAdmin.SetSettings(ctx, want)).To(Succeed())
		got, err := mainAdmin.Settings(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(*got).To(Equal(want), "the main's settings after PUT")
		Eventually(func() (server.Settings, error) {
			s, err := backupAdmin.Settings(ctx)
			if err != nil {
				return server.Settings{}, err
			}
			return *s, nil
		}).WithTimeout(syncBound).WithPolling(50 * time.Millisecond).Should(Equal(want))
		figure("pair sync: settings main → backup", time.Since(set))

		// 2. Files of spec.sync.paths.
		mainSB, err := sandboxOf(ctx, ns, group.PodName(name, "main"))
		Expect(err).NotTo(HaveOccurred())
		backupSB, err := sandboxOf(ctx, ns, group.PodName(name, "backup"))
		Expect(err).NotTo(HaveOccurred())
		mainData, backupData := mainSB.volume("data"), backupSB.volume("data")
		Expect(mainData).To(BeADirectory())
		Expect(backupData).To(BeADirectory())
		GinkgoWriter.Printf("data folders: main %s, backup %s\n", mainData, backupData)

		oldB := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
		written := time.Now()
		writeFile(mainData, "settings/a.xml", "<a>1</a>\n", time.Time{})
		writeFile(mainData, "settings/b.xml", "<b>old</b>\n", oldB)
		writeFile(mainData, "settings/c.tmp", "excluded\n", time.Time{})
		writeFile(mainData, "settings/other/ignored.txt", "not included\n", time.Time{})
		writeFile(mainData, "other/ignored.txt", "outside the sync paths\n", time.Time{})

		// arrived waits until the backup's copy of each file equals the
		// main's (content and mtime) and returns how long it took since t.
		arrived := func(t time.Time, rels ...string) time.Duration {
			GinkgoHelper()
			Eventually(func() error {
				for _, rel := range rels {
					m, ok, err := readSynced(mainData, rel)
					if err != nil || !ok {
						return fmt.Errorf("main %s: ok=%v err=%v", rel, ok, err)
					}
					b, ok, err := readSynced(backupData, rel)
					if err != nil {
						return err
					}
					if !ok {
						return fmt.Errorf("backup has no %s yet", rel)
					}
					if b.Content != m.Content {
						return fmt.Errorf("backup %s: content %q, main %q", rel, b.Content, m.Content)
					}
					if !b.ModTime.Equal(m.ModTime) {
						return fmt.Errorf("backup %s: mtime %s, main %s", rel, b.ModTime.Format(time.RFC3339Nano), m.ModTime.Format(time.RFC3339Nano))
					}
				}
				return nil
			}).WithTimeout(syncBound).WithPolling(50 * time.Millisecond).Should(Succeed())
			return time.Since(t)
		}
		gone := func(t time.Time, rel string) time.Duration {
			GinkgoHelper()
			Eventually(func() (bool, error) {
				_, ok, err := readSynced(backupData, rel)
				return ok, err
			}).WithTimeout(syncBound).WithPolling(50*time.Millisecond).Should(BeFalse(), "backup still has %s", rel)
			return time.Since(t)
		}
		notSynced := []string{"settings/c.tmp", "settings/other/ignored.txt", "other/ignored.txt"}
		neverOnBackup := func(d time.Duration) {
			GinkgoHelper()
			Consistently(func() []string {
				var found []string
				for _, rel := range notSynced {
					if _, ok, _ := readSynced(backupData, rel); ok {
						found = append(found, rel)
					}
				}
				return found
			}).WithTimeout(d).WithPolling(200 * time.Millisecond).Should(BeEmpty())
		}

		figure("pair sync: new files main → backup", arrived(written, "settings/a.xml", "settings/b.xml"))
		b, _, err := readSynced(backupData, "settings/b.xml")
		Expect(err).NotTo(HaveOccurred())
		Expect(b.ModTime).To(BeTemporally("==", oldB), "preserveTimestamps: the main's old mtime, to the nanosecond")
		// Two intervals and more: the filtered files never come.
		neverOnBackup(5 * time.Second)

		// Strict: a file deleted on the main goes on the backup.
		deleted := time.Now()
		Expect(os.Remove(filepath.Join(mainData, "settings", "a.xml"))).To(Succeed())
		figure("pair sync: deletion main → backup", gone(deleted, "settings/a.xml"))

		// A change arrives, with the main's new mtime.
		newB := time.Date(2022, 6, 7, 8, 9, 10, 987654321, time.UTC)
		changed := time.Now()
		writeFile(mainData, "settings/b.xml", "<b>new, and longer</b>\n", newB)
		figure("pair sync: change main → backup", arrived(changed, "settings/b.xml"))
		b, _, err = readSynced(backupData, "settings/b.xml")
		Expect(err).NotTo(HaveOccurred())
		Expect(b.Content).To(Equal("<b>new, and longer</b>\n"))
		Expect(b.ModTime).To(BeTemporally("==", newB))
		neverOnBackup(time.Second)
		_, ok, err := readSynced(backupData, "settings/a.xml")
		Expect(err).NotTo(HaveOccurred())
		Expect(ok).To(BeFalse(), "a.xml came back on the backup")

		// The pair reports the backup in step: settings and files revision.
		Eventually(func(g Gomega) {
			p := &licensehav1.LicenseBackupPair{}
			g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, p)).To(Succeed())
			g.Expect(p.Status.Connected).To(BeTrue(), "connected")
			g.Expect(p.Status.Synchronized).To(BeTrue(), "synchronized")
			g.Expect(p.Status.SyncState).To(Equal(licensehav1.ConnectedSynchronized))
			g.Expect(meta.IsStatusConditionTrue(p.Status.Conditions, licensehav1.ConditionSynchronized)).To(BeTrue(), "condition Synchronized")
			revs := map[string]int64{}
			for _, m := range []string{"main", "backup"} {
				pod := &corev1.Pod{}
				g.Expect(env.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.PodName(name, m)}, pod)).To(Succeed())
				st, ok := group.ParseMemberState(pod.Annotations)
				g.Expect(ok).To(BeTrue(), "%s reports its state", m)
				revs[m] = st.FilesRevision
			}
			g.Expect(revs["main"]).To(BeNumerically(">", 0), "the main published files")
			g.Expect(revs["backup"]).To(Equal(revs["main"]), "the backup holds the main's files revision")
		}).WithTimeout(syncBound).WithPolling(200 * time.Millisecond).Should(Succeed())
		// Files outside the filters are untouched on the main, and the
		// backup's settings are still the main's.
		Expect(filepath.Join(mainData, "settings", "c.tmp")).To(BeARegularFile())
		s, err := backupAdmin.Settings(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(*s).To(Equal(want))
	})
})
