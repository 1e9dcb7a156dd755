package controllers_test

import (
	"encoding/json"
	"slices"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// vendorTriad is a triad running a vendor image with a service list and a
// shared capture folder from the PVC claim.
func vendorTriad(ns, name, claim string) *licensehav1.LicenseTriad {
	t := validTriad(ns, name)
	t.Spec.Server.Image = "vendor.example.com/lm:11"
	t.Spec.Server.Command = []string{"/opt/lm/lmserver", "-foreground"}
	t.Spec.Server.Services = []licensehav1.ServerService{
		{Name: "lmhelper", Command: []string{"/opt/lm/lmhelper"}},
		{Name: "console", Command: []string{"/opt/lm/console"}, RunWhen: licensehav1.RunWhenAlways},
	}
	t.Spec.Server.Volumes = []licensehav1.ServerVolume{{Name: "capture", MountPath: "/srv/capture",
		PersistentVolumeClaim: &licensehav1.VolumeClaimReference{ClaimName: claim}}}
	t.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "lm/db", Exclude: []string{"*.lock"}}}
	return t
}

var _ = Describe("Vendor servers", func() {
	var ns string
	BeforeEach(func() { ns = newNamespace() })

	It("rejects services without a vendor command, and volumes over the member's own mounts", func() {
		t := validTriad(ns, "svc-ref")
		t.Spec.Server.Services = []licensehav1.ServerService{{Name: "x", Command: []string{"/x"}}}
		expectRejected(t, "spec.server.services need spec.server.command")

		t = vendorTriad(ns, "vol-etc", "c")
		t.Spec.Server.Volumes[0].MountPath = "/etc/licenseha/licenses"
		expectRejected(t, "spec.server.volumes[].mountPath may not be, contain or lie under /licenseha, /etc/licenseha")

		t = vendorTriad(ns, "vol-data", "c")
		t.Spec.Server.Volumes[0].MountPath = "/var/lib/licenseha/capture"
		expectRejected(t, "spec.server.volumes[].mountPath may not be, contain or lie under spec.server.dataPath")

		t = vendorTriad(ns, "vol-rel", "c")
		t.Spec.Server.Volumes[0].MountPath = "srv/../etc"
		expectRejected(t, "spec.server.volumes[].mountPath must be an absolute path")

		t = vendorTriad(ns, "vol-two", "c")
		t.Spec.Server.Volumes[0].EmptyDir = &licensehav1.EmptyDirVolume{}
		expectRejected(t, "set exactly one of persistentVolumeClaim, configMap, secret, emptyDir")

		t = vendorTriad(ns, "vol-same", "c")
		t.Spec.Server.Volumes = append(t.Spec.Server.Volumes, licensehav1.ServerVolume{Name: "scratch", MountPath: "/srv/capture",
			EmptyDir: &licensehav1.EmptyDirVolume{}})
		expectRejected(t, "spec.server.volumes[].mountPath must differ between volumes")

		t = vendorTriad(ns, "svc-name", "c")
		t.Spec.Server.Services[0].Name = "Bad_Name"
		expectRejected(t, "spec.server.services[0].name")
	})

	It("writes no pod until the mounted claim is opted in, then runs the services and mounts it", func() {
		claim := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "capture"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
				Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}
		Expect(k8sClient.Create(ctx, claim)).To(Succeed())
		t := vendorTriad(ns, "vendor", "capture")
		Expect(k8sClient.Create(ctx, licenseSecret(ns, "vendor-licenses"))).To(Succeed())
		Expect(k8sClient.Create(ctx, t)).To(Succeed())

		Eventually(triadCondition(client.ObjectKeyFromObject(t), licensehav1.ConditionReady), timeout, interval).Should(And(
			haveReason(metav1.ConditionFalse, licensehav1.ReasonVolumeNotAllowed),
			HaveField("Message", ContainSubstring("spec.server.volumes[capture].persistentVolumeClaim: PersistentVolumeClaim capture lacks the label licenseha.io/mountable=true"))))
		Consistently(podUID(ns, "vendor-a"), "2s", interval).Should(BeEmpty(), "a pod was written with a mount nobody allowed")

		Expect(update(claim, func(c *corev1.PersistentVolumeClaim) {
			c.Labels = map[string]string{licensehav1.LabelMountable: "true"}
		})).To(Succeed())
		Eventually(podUID(ns, "vendor-a"), timeout, interval).ShouldNot(BeEmpty())

		pod := getPod(ns, "vendor-a")
		c := pod.Spec.Containers[0]
		Expect(c.VolumeMounts).To(ContainElement(corev1.VolumeMount{Name: "user-capture", MountPath: "/srv/capture"}))
		Expect(pod.Spec.Volumes).To(ContainElement(HaveField("VolumeSource.PersistentVolumeClaim.ClaimName", "capture")))
		sep := slices.Index(c.Command, "--")
		Expect(sep).To(BeNumerically(">", 0))
		Expect(c.Command).To(ContainElement("--stop-to-fence"))
		var services []group.Service
		for _, arg := range c.Command[:sep] {
			if v, ok := strings.CutPrefix(arg, "--service="); ok {
				s, err := group.ParseServiceFlag(v)
				Expect(err).NotTo(HaveOccurred())
				services = append(services, s)
			}
		}
		Expect(services).To(Equal([]group.Service{
			{Name: "lmhelper", Command: []string{"/opt/lm/lmhelper"}},
			{Name: "console", Command: []string{"/opt/lm/console"}, Always: true},
		}))
		Expect(c.Command[sep+1:]).To(Equal([]string{"/opt/lm/lmserver", "-foreground"}))

		By("giving the agents the triad's sync paths")
		cm := &corev1.ConfigMap{}
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: group.ConfigName("vendor")}, cm)
		}, timeout, interval).Should(Succeed())
		var cfg group.Config
		Expect(json.Unmarshal([]byte(cm.Data[group.ConfigKey]), &cfg)).To(Succeed())
		Expect(cfg.SyncPaths).To(Equal([]group.SyncPath{{Path: "lm/db", Exclude: []string{"*.lock"}}}))
		Expect(cfg.PreserveTimestamps).To(BeTrue())
	})
})
