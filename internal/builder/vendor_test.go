package builder

import (
	"reflect"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// TestServerVolumes: each spec.server.volumes entry becomes one pod volume
// named user-<name> of its one source and one mount of the server
// container; the objects to check for the opt-in label are listed with the
// field that names them.
func TestServerVolumes(t *testing.T) {
	tr := fixtureTriad()
	tr.Spec.Server.Volumes = []licensehav1.ServerVolume{
		{Name: "capture", MountPath: "/srv/capture", PersistentVolumeClaim: &licensehav1.VolumeClaimReference{ClaimName: "shared"}},
		{Name: "conf", MountPath: "/opt/lm/conf", ReadOnly: true, ConfigMap: &licensehav1.LocalObjectReference{Name: "lm-conf"}},
		{Name: "keys", MountPath: "/opt/lm/keys", ReadOnly: true, Secret: &licensehav1.LocalObjectReference{Name: "lm-keys"}},
		{Name: "scratch", MountPath: "/scratch", EmptyDir: &licensehav1.EmptyDirVolume{SizeLimit: ptr.To(resource.MustParse("1Gi"))}},
	}
	g := FromTriad(tr)
	pod := Pod(g, g.Members[0], Options{Image: opImage})
	vols := map[string]corev1.VolumeSource{}
	for _, v := range pod.Spec.Volumes {
		vols[v.Name] = v.VolumeSource
	}
	if src := vols["user-capture"].PersistentVolumeClaim; src == nil || src.ClaimName != "shared" || src.ReadOnly {
		t.Errorf("capture: %+v", vols["user-capture"])
	}
	if src := vols["user-conf"].ConfigMap; src == nil || src.Name != "lm-conf" {
		t.Errorf("conf: %+v", vols["user-conf"])
	}
	if src := vols["user-keys"].Secret; src == nil || src.SecretName != "lm-keys" || *src.DefaultMode != 0o440 {
		t.Errorf("keys: %+v", vols["user-keys"])
	}
	if src := vols["user-scratch"].EmptyDir; src == nil || src.SizeLimit.String() != "1Gi" {
		t.Errorf("scratch: %+v", vols["user-scratch"])
	}
	mounts := map[string]corev1.VolumeMount{}
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		mounts[m.Name] = m
	}
	for name, want := range map[string]corev1.VolumeMount{
		"user-capture": {Name: "user-capture", MountPath: "/srv/capture"},
		"user-conf":    {Name: "user-conf", MountPath: "/opt/lm/conf", ReadOnly: true},
		"user-keys":    {Name: "user-keys", MountPath: "/opt/lm/keys", ReadOnly: true},
		"user-scratch": {Name: "user-scratch", MountPath: "/scratch"},
	} {
		if mounts[name] != want {
			t.Errorf("mount %s = %+v, want %+v", name, mounts[name], want)
		}
	}
	want := []MountedObject{
		{Field: "spec.server.volumes[capture].persistentVolumeClaim", Kind: "PersistentVolumeClaim", Name: "shared"},
		{Field: "spec.server.volumes[conf].configMap", Kind: "ConfigMap", Name: "lm-conf"},
		{Field: "spec.server.volumes[keys].secret", Kind: "Secret", Name: "lm-keys"},
	}
	if got := MountedObjects(g); !reflect.DeepEqual(got, want) {
		t.Errorf("mounted objects\n got %+v\nwant %+v", got, want)
	}
}
