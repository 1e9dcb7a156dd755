package controllers_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/testfixtures"
)

// validTriad and validPair are the shared fixtures: triad members a, b, c
// reading <triad>-licenses; a pair reading <pair>-main and <pair>-backup.
func validTriad(ns, name string) *licensehav1.LicenseTriad { return testfixtures.Triad(ns, name) }

func validPair(ns, name string) *licensehav1.LicenseBackupPair { return testfixtures.Pair(ns, name) }

func email() *licensehav1.NotificationsSpec {
	return &licensehav1.NotificationsSpec{Email: &licensehav1.EmailNotification{
		SMTPHost: "smtp.example.com", From: "ops@example.com", To: []string{"oncall@example.com"},
	}}
}

// expectRejected asserts the API server refused obj at admission and that the
// message names every fragment (the field, and what is allowed).
func expectRejected(obj client.Object, fragments ...string) {
	err := k8sClient.Create(ctx, obj)
	Expect(err).To(HaveOccurred(), "the API server accepted an invalid object")
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected an Invalid error, got %v", err)
	for _, f := range fragments {
		Expect(err.Error()).To(ContainSubstring(f))
	}
}

// update re-reads obj, applies mutate and writes it, retrying only on
// conflicts (the operator adds its finalizer concurrently).
func update[T client.Object](obj T, mutate func(T)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
			return err
		}
		mutate(obj)
		return k8sClient.Update(ctx, obj)
	})
}

var _ = Describe("CRD validation", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("accepts every sample in config/samples", func() {
		files, err := filepath.Glob(filepath.Join("..", "config", "samples", "*.yaml"))
		Expect(err).NotTo(HaveOccurred())
		created := 0
		for _, f := range files {
			if filepath.Base(f) == "kustomization.yaml" {
				continue
			}
			data, err := os.ReadFile(f)
			Expect(err).NotTo(HaveOccurred())
			for _, doc := range bytes.Split(data, []byte("\n---")) {
				if len(bytes.TrimSpace(doc)) == 0 {
					continue
				}
				u := &unstructured.Unstructured{}
				Expect(yaml.Unmarshal(doc, &u.Object)).To(Succeed(), f)
				if u.Object == nil {
					continue
				}
				u.SetNamespace(ns)
				Expect(k8sClient.Create(ctx, u)).To(Succeed(), "sample %s (%s %s)", f, u.GetKind(), u.GetName())
				created++
			}
		}
		Expect(created).To(BeNumerically(">=", 2))
	})

	DescribeTable("rejects invalid triads with a message naming the field",
		func(mutate func(t *licensehav1.LicenseTriad), fragments ...string) {
			t := validTriad(ns, "bad")
			mutate(t)
			expectRejected(t, fragments...)
		},
		Entry("two members", func(t *licensehav1.LicenseTriad) { t.Spec.Members = t.Spec.Members[:2] },
			"spec.members", "3 items"),
		Entry("four members", func(t *licensehav1.LicenseTriad) {
			t.Spec.Members = append(t.Spec.Members, licensehav1.TriadMember{Name: "d", Role: licensehav1.RoleTertiary})
		}, "spec.members", "at most 3 items"),
		Entry("no primary", func(t *licensehav1.LicenseTriad) { t.Spec.Members[0].Role = licensehav1.RoleSecondary },
			"spec.members", "exactly one member with role Primary"),
		Entry("two tertiaries", func(t *licensehav1.LicenseTriad) { t.Spec.Members[1].Role = licensehav1.RoleTertiary },
			"exactly one member with role Secondary", "exactly one member with role Tertiary"),
		Entry("a role missing", func(t *licensehav1.LicenseTriad) { t.Spec.Members[2].Role = "" },
			"spec.members[2].role", "Unsupported value"),
		Entry("an unknown role", func(t *licensehav1.LicenseTriad) { t.Spec.Members[0].Role = "Quaternary" },
			"spec.members[0].role", `supported values: "Primary", "Secondary", "Tertiary"`),
		Entry("repeated member names", func(t *licensehav1.LicenseTriad) { t.Spec.Members[1].Name = "a" },
			"spec.members[1]", "Duplicate value"),
		Entry("member name not a DNS label", func(t *licensehav1.LicenseTriad) { t.Spec.Members[0].Name = "Member_A" },
			"spec.members[0].name", "should match"),
		Entry("member name too long for <triad>-<member>", func(t *licensehav1.LicenseTriad) {
			t.Name = strings.Repeat("t", 30)
			t.Spec.Members[0].Name = strings.Repeat("m", 40)
		}, "spec.members[].name is too long", "at most 63 characters"),
		Entry("triad name too long for its Services", func(t *licensehav1.LicenseTriad) { t.Name = strings.Repeat("t", 60) },
			"metadata.name of a LicenseTriad", "at most 55 characters"),
		Entry("zero peer timeout", func(t *licensehav1.LicenseTriad) { t.Spec.Failover.PeerTimeoutSeconds = -1 },
			"spec.failover.peerTimeoutSeconds", "greater than or equal to 1"),
		Entry("negative sync interval", func(t *licensehav1.LicenseTriad) { t.Spec.Sync.IntervalSeconds = -5 },
			"spec.sync.intervalSeconds", "greater than or equal to 1"),
		Entry("negative failback delay", func(t *licensehav1.LicenseTriad) { t.Spec.Failover.FailbackDelaySeconds = -1 },
			"spec.failover.failbackDelaySeconds", "greater than or equal to 0"),
		Entry("heartbeat slower than half the peer timeout", func(t *licensehav1.LicenseTriad) {
			t.Spec.Failover.PeerTimeoutSeconds = 1
			t.Spec.Failover.HeartbeatIntervalMilliseconds = 600
		}, "spec.failover.heartbeatIntervalMilliseconds must be at most half of peerTimeoutSeconds"),
		Entry("unknown failback policy", func(t *licensehav1.LicenseTriad) { t.Spec.Failover.Failback = "Sometimes" },
			"spec.failover.failback", `supported values: "Automatic", "Manual"`),
		Entry("unknown dissolve policy", func(t *licensehav1.LicenseTriad) { t.Spec.DissolvePolicy = "Orphan" },
			"spec.dissolvePolicy", `supported values: "Retain", "Delete"`),
		Entry("unknown service type", func(t *licensehav1.LicenseTriad) { t.Spec.Service.Type = "ExternalName" },
			"spec.service.type", "Unsupported value"),
		Entry("missing licence Secret reference", func(t *licensehav1.LicenseTriad) { t.Spec.LicenseSecretRef.Name = "" },
			"spec.licenseSecretRef.name", "at least 1 chars"),
		Entry("port above 65535", func(t *licensehav1.LicenseTriad) { t.Spec.Server.Port = 70000 },
			"spec.server.port", "less than or equal to 65535"),
		Entry("negative port", func(t *licensehav1.LicenseTriad) { t.Spec.Server.Port = -1 },
			"spec.server.port", "greater than or equal to 1"),
		Entry("relative data path", func(t *licensehav1.LicenseTriad) { t.Spec.Server.DataPath = "data" },
			"spec.server.dataPath must be an absolute path"),
		Entry("malformed MAC address", func(t *licensehav1.LicenseTriad) { t.Spec.Members[0].MACAddress = "00:11:22" },
			"spec.members[0].macAddress", "should match"),
		Entry("e-mail without SMTP host", func(t *licensehav1.LicenseTriad) {
			t.Spec.Notifications = email()
			t.Spec.Notifications.Email.SMTPHost = ""
		}, "spec.notifications.email.smtpHost"),
		Entry("e-mail without sender", func(t *licensehav1.LicenseTriad) {
			t.Spec.Notifications = email()
			t.Spec.Notifications.Email.From = ""
		}, "spec.notifications.email.from"),
		Entry("e-mail without recipients", func(t *licensehav1.LicenseTriad) {
			t.Spec.Notifications = email()
			t.Spec.Notifications.Email.To = nil
		}, "spec.notifications.email.to", "Required value"),
		Entry("e-mail SMTP port out of range", func(t *licensehav1.LicenseTriad) {
			t.Spec.Notifications = email()
			t.Spec.Notifications.Email.Port = 65536
		}, "spec.notifications.email.port", "less than or equal to 65535"),
		Entry("webhook that is not an HTTP URL", func(t *licensehav1.LicenseTriad) {
			t.Spec.Notifications = &licensehav1.NotificationsSpec{Webhook: &licensehav1.WebhookNotification{URL: "ftp://hooks"}}
		}, "spec.notifications.webhook.url must be an http:// or https:// URL"),
	)

	DescribeTable("rejects invalid backup pairs with a message naming the field",
		func(mutate func(p *licensehav1.LicenseBackupPair), fragments ...string) {
			p := validPair(ns, "bad")
			mutate(p)
			expectRejected(p, fragments...)
		},
		Entry("roles while ActiveActive", func(p *licensehav1.LicenseBackupPair) { p.Spec.Roles = licensehav1.RolesFixed },
			"spec.roles may only be set when spec.mode is ActivePassive"),
		Entry("unknown mode", func(p *licensehav1.LicenseBackupPair) { p.Spec.Mode = "HotStandby" },
			"spec.mode", `supported values: "ActiveActive", "ActivePassive"`),
		Entry("unknown roles", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Mode = licensehav1.ActivePassive
			p.Spec.Roles = "Random"
		}, "spec.roles", `supported values: "Fixed", "Symmetric"`),
		Entry("main licence mapped twice", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: "M1", Backup: "B1"}, {Main: "M1", Backup: "B2"}}
		}, "each main licence may be mapped only once"),
		Entry("backup licence mapped twice", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: "M1", Backup: "B1"}, {Main: "M2", Backup: "B1"}}
		}, "each backup licence may be mapped only once"),
		Entry("absolute sync path", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "/etc"}}
		}, "spec.sync.paths[0].path", "must be relative to server.dataPath"),
		Entry("sync path climbing out with ..", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "settings/../../etc"}}
		}, "spec.sync.paths[].path may not contain '..'"),
		Entry("missing backup licence Secret", func(p *licensehav1.LicenseBackupPair) { p.Spec.Backup.LicenseSecretRef.Name = "" },
			"spec.backup.licenseSecretRef.name"),
		Entry("zero sync interval", func(p *licensehav1.LicenseBackupPair) { p.Spec.Sync.IntervalSeconds = -1 },
			"spec.sync.intervalSeconds", "greater than or equal to 1"),
		Entry("port above 65535", func(p *licensehav1.LicenseBackupPair) { p.Spec.Server.Port = 65536 },
			"spec.server.port"),
		Entry("disconnected while ActivePassive", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Mode = licensehav1.ActivePassive
			p.Spec.Disconnected = &licensehav1.PairDisconnectedSpec{LocalSide: licensehav1.SideMain}
		}, "spec.disconnected requires spec.mode ActiveActive"),
		Entry("disconnected without a local side", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Disconnected = &licensehav1.PairDisconnectedSpec{}
		}, "spec.disconnected.localSide"),
		Entry("disconnected with an unknown local side", func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Disconnected = &licensehav1.PairDisconnectedSpec{LocalSide: "witness"}
		}, "spec.disconnected.localSide", `supported values: "main", "backup"`),
	)

	It("applies the documented defaults", func() {
		t := validTriad(ns, "defaults")
		Expect(k8sClient.Create(ctx, t)).To(Succeed())
		got := &licensehav1.LicenseTriad{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(t), got)).To(Succeed())
		Expect(got.Spec.Server.Port).To(BeEquivalentTo(5160))
		Expect(got.Spec.Server.DataPath).To(Equal("/var/lib/licenseha"))
		Expect(got.Spec.Failover.PeerTimeoutSeconds).To(BeEquivalentTo(2))
		Expect(got.Spec.Failover.HeartbeatIntervalMilliseconds).To(BeEquivalentTo(250))
		Expect(got.Spec.Failover.Failback).To(Equal(licensehav1.FailbackAutomatic))
		Expect(got.Spec.Failover.FailbackDelaySeconds).To(BeEquivalentTo(30))
		Expect(got.Spec.Sync.IntervalSeconds).To(BeEquivalentTo(10))
		Expect(got.Spec.Service.Type).To(Equal(licensehav1.ServiceTypeClusterIP))
		Expect(got.Spec.DissolvePolicy).To(Equal(licensehav1.DissolveRetain))

		p := validPair(ns, "defaults")
		p.Spec.Notifications = email()
		p.Spec.Storage = &licensehav1.StorageSpec{}
		Expect(k8sClient.Create(ctx, p)).To(Succeed())
		gotP := &licensehav1.LicenseBackupPair{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(p), gotP)).To(Succeed())
		Expect(gotP.Spec.Mode).To(Equal(licensehav1.ActiveActive))
		Expect(gotP.Spec.Roles).To(BeEmpty())
		Expect(gotP.Spec.Sync.IntervalSeconds).To(BeEquivalentTo(30))
		Expect(gotP.Spec.Sync.Strict).To(BeFalse())
		Expect(gotP.Spec.Sync.PreserveTimestamps).To(Equal(ptr.To(true)))
		Expect(gotP.Spec.Failover.PeerTimeoutSeconds).To(BeEquivalentTo(2))
		Expect(gotP.Spec.Server.Port).To(BeEquivalentTo(5160))
		Expect(gotP.Spec.Notifications.Email.Port).To(BeEquivalentTo(587))
		Expect(gotP.Spec.Notifications.Email.StartTLS).To(Equal(ptr.To(true)))
		Expect(gotP.Spec.Storage.Size.String()).To(Equal("1Gi"))
	})

	Describe("changes that cannot be honoured", func() {
		It("refuses to move the data path", func() {
			t := validTriad(ns, "immutable")
			Expect(k8sClient.Create(ctx, t)).To(Succeed())
			err := update(t, func(t *licensehav1.LicenseTriad) { t.Spec.Server.DataPath = "/data" })
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("spec.server.dataPath is immutable"))
		})

		It("refuses to add storage later, to change its class, or to shrink it", func() {
			t := validTriad(ns, "storage")
			Expect(k8sClient.Create(ctx, t)).To(Succeed())
			err := update(t, func(t *licensehav1.LicenseTriad) {
				t.Spec.Storage = &licensehav1.StorageSpec{Size: ptr.To(resource.MustParse("1Gi"))}
			})
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("spec.storage cannot be added or removed after creation"))

			s := validTriad(ns, "storage2")
			s.Spec.Storage = &licensehav1.StorageSpec{Size: ptr.To(resource.MustParse("2Gi")), StorageClassName: ptr.To("fast")}
			Expect(k8sClient.Create(ctx, s)).To(Succeed())
			err = update(s, func(s *licensehav1.LicenseTriad) { s.Spec.Storage.StorageClassName = ptr.To("slow") })
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("spec.storage.storageClassName is immutable"))

			err = update(s, func(s *licensehav1.LicenseTriad) { s.Spec.Storage.Size = ptr.To(resource.MustParse("1Gi")) })
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("spec.storage.size may grow but never shrink"))

			Expect(update(s, func(s *licensehav1.LicenseTriad) { s.Spec.Storage.Size = ptr.To(resource.MustParse("5Gi")) })).
				To(Succeed(), "growing a volume is allowed")
		})

		It("refuses to switch a pair's mode but allows role changes in a triad", func() {
			p := validPair(ns, "mode")
			Expect(k8sClient.Create(ctx, p)).To(Succeed())
			err := update(p, func(p *licensehav1.LicenseBackupPair) { p.Spec.Mode = licensehav1.ActivePassive })
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("spec.mode is immutable"))

			d := validPair(ns, "disconnected")
			d.Spec.Disconnected = &licensehav1.PairDisconnectedSpec{LocalSide: licensehav1.SideBackup}
			Expect(k8sClient.Create(ctx, d)).To(Succeed())
			err = update(d, func(p *licensehav1.LicenseBackupPair) { p.Spec.Disconnected.LocalSide = licensehav1.SideMain })
			Expect(err).To(HaveOccurred())
			Expect(err.Error()).To(ContainSubstring("spec.disconnected.localSide is immutable"))

			t := validTriad(ns, "roles")
			Expect(k8sClient.Create(ctx, t)).To(Succeed())
			Expect(update(t, func(t *licensehav1.LicenseTriad) {
				t.Spec.Members[0].Role, t.Spec.Members[1].Role = licensehav1.RoleSecondary, licensehav1.RolePrimary
			})).To(Succeed(), "swapping roles is a planned switchover")
		})
	})
})
