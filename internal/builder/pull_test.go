package builder

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// TestPodImagePulls: which pull policy each container gets and which pull
// secrets the pod carries, from the operator's options and the group's
// spec.server.
func TestPodImagePulls(t *testing.T) {
	const own = "ghcr.io/licenseha/licenseha:1.0"
	refs := func(names ...string) []licensehav1.LocalObjectReference {
		var out []licensehav1.LocalObjectReference
		for _, n := range names {
			out = append(out, licensehav1.LocalObjectReference{Name: n})
		}
		return out
	}
	for _, tc := range []struct {
		name                 string
		opts                 Options
		server               licensehav1.ServerSpec
		wantInit, wantServer corev1.PullPolicy
		wantSecrets          []string
	}{
		{name: "defaults", wantInit: corev1.PullIfNotPresent, wantServer: corev1.PullIfNotPresent},
		{name: "operator's policy covers the licenseha image in both containers",
			opts:     Options{ImagePullPolicy: corev1.PullNever},
			wantInit: corev1.PullNever, wantServer: corev1.PullNever},
		{name: "a vendor image keeps IfNotPresent unless the group says",
			opts:     Options{ImagePullPolicy: corev1.PullAlways},
			server:   licensehav1.ServerSpec{Image: "vendor.example/lmgrd:11"},
			wantInit: corev1.PullAlways, wantServer: corev1.PullIfNotPresent},
		{name: "the group's policy is the server's",
			opts:     Options{ImagePullPolicy: corev1.PullNever},
			server:   licensehav1.ServerSpec{Image: "vendor.example/lmgrd:11", ImagePullPolicy: corev1.PullAlways},
			wantInit: corev1.PullNever, wantServer: corev1.PullAlways},
		{name: "operator's secrets first, then the group's, each once",
			opts:     Options{ImagePullSecrets: []string{"regcred", "mirror"}},
			server:   licensehav1.ServerSpec{ImagePullSecrets: refs("vendor", "regcred")},
			wantInit: corev1.PullIfNotPresent, wantServer: corev1.PullIfNotPresent,
			wantSecrets: []string{"regcred", "mirror", "vendor"}},
		{name: "the group's secrets alone",
			server:   licensehav1.ServerSpec{ImagePullSecrets: refs("vendor")},
			wantInit: corev1.PullIfNotPresent, wantServer: corev1.PullIfNotPresent,
			wantSecrets: []string{"vendor"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := fixtureTriad()
			tr.Spec.Server = tc.server
			g := FromTriad(tr)
			opts := tc.opts
			opts.Image = own
			p := Pod(g, g.Members[0], opts)
			if got := p.Spec.InitContainers[0].ImagePullPolicy; got != tc.wantInit {
				t.Errorf("agent init container pulls %s, want %s", got, tc.wantInit)
			}
			if got := p.Spec.Containers[0].ImagePullPolicy; got != tc.wantServer {
				t.Errorf("server container pulls %s, want %s", got, tc.wantServer)
			}
			var secrets []string
			for _, s := range p.Spec.ImagePullSecrets {
				secrets = append(secrets, s.Name)
			}
			if !slices.Equal(secrets, tc.wantSecrets) {
				t.Errorf("pull secrets %v, want %v", secrets, tc.wantSecrets)
			}
		})
	}
}
