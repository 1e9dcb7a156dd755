package builder

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// The tests below look at one part of the member pod each, with the
// expected values written out, across the spec fields that shape it.

// TestPodEnv: the agent's identity from the downward API comes first, then
// spec.server.env in the user's order.
func TestPodEnv(t *testing.T) {
	describe := func(env []corev1.EnvVar) []string {
		var out []string
		for _, e := range env {
			switch {
			case e.ValueFrom != nil && e.ValueFrom.FieldRef != nil:
				out = append(out, e.Name+"<-"+e.ValueFrom.FieldRef.FieldPath)
			case e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil:
				out = append(out, e.Name+"<-secret "+e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key)
			default:
				out = append(out, e.Name+"="+e.Value)
			}
		}
		return out
	}
	downward := []string{"POD_NAME<-metadata.name", "POD_NAMESPACE<-metadata.namespace", "POD_IP<-status.podIP"}
	for _, tc := range []struct {
		name string
		env  []corev1.EnvVar
		want []string
	}{
		{name: "no user env", want: downward},
		{name: "user env in order, values and references", env: []corev1.EnvVar{
			{Name: "Z", Value: "1"},
			{Name: "LM_LICENSE_FILE", Value: "/etc/licenseha/licenses"},
			{Name: "PW", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "k"}}},
		}, want: append(slices.Clone(downward), "Z=1", "LM_LICENSE_FILE=/etc/licenseha/licenses", "PW<-secret s/k")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range []string{"triad", "pair"} {
				var g Group
				if kind == "triad" {
					tr := fixtureTriad()
					tr.Spec.Server.Env = tc.env
					g = FromTriad(tr)
				} else {
					p := fixturePair()
					p.Spec.Server.Env = tc.env
					g = FromPair(p)
				}
				pod := Pod(g, g.Members[0], Options{Image: opImage})
				if got := describe(pod.Spec.Containers[0].Env); !slices.Equal(got, tc.want) {
					t.Errorf("%s env\n got %q\nwant %q", kind, got, tc.want)
				}
				if len(pod.Spec.InitContainers[0].Env) > 0 {
					t.Errorf("%s: the init container got env %v", kind, pod.Spec.InitContainers[0].Env)
				}
			}
		})
	}
	// Building the pod leaves the spec's env alone (no aliasing of the
	// user's slice by the appended downward variables).
	tr := fixtureTriad()
	tr.Spec.Server.Env = make([]corev1.EnvVar, 1, 8)
	tr.Spec.Server.Env[0] = corev1.EnvVar{Name: "A", Value: "1"}
	g := FromTriad(tr)
	a := Pod(g, g.Members[0], Options{Image: opImage})
	b := Pod(g, g.Members[1], Options{Image: opImage})
	if len(tr.Spec.Server.Env) != 1 || tr.Spec.Server.Env[0].Name != "A" {
		t.Errorf("the spec's env changed: %v", tr.Spec.Server.Env)
	}
	if got := describe(a.Spec.Containers[0].Env); got[len(got)-1] != "A=1" || len(got) != 4 {
		t.Errorf("pod a env %q", got)
	}
	if got := describe(b.Spec.Containers[0].Env); got[len(got)-1] != "A=1" || len(got) != 4 {
		t.Errorf("pod b env %q", got)
	}
}

// TestPodResources: spec.server.resources are the server container's; the
// agent's init container has its own small memory limit.
func TestPodResources(t *testing.T) {
	for _, tc := range []struct {
		name string
		res  corev1.ResourceRequirements
	}{
		{name: "none"},
		{name: "requests and limits", res: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("512Mi")},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := fixturePair()
			p.Spec.Server.Resources = tc.res
			g := FromPair(p)
			pod := Pod(g, g.Members[1], Options{Image: opImage})
			if got, want := mustJSON(t, pod.Spec.Containers[0].Resources), mustJSON(t, tc.res); got != want {
				t.Errorf("server resources %s, want %s", got, want)
			}
			init := pod.Spec.InitContainers[0].Resources
			if mem := init.Limits[corev1.ResourceMemory]; mem.String() != "64Mi" || len(init.Limits) != 1 || len(init.Requests) != 0 {
				t.Errorf("agent init container resources %+v, want a 64Mi memory limit", init)
			}
		})
	}
}

// TestPodPlacement: a member's placement reaches its pod only: node
// selector, tolerations, its own affinity instead of the default spread,
// hostname, MAC address annotation.
func TestPodPlacement(t *testing.T) {
	custom := &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: "site", Operator: corev1.NodeSelectorOpIn, Values: []string{"plant-a"}}}}}}}}
	tol := []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "licenses", Effect: corev1.TaintEffectNoSchedule}}
	type placed struct {
		hostname     string
		nodeSelector string
		tolerations  int
		affinity     string // "spread" (the default) or "own"
		annotations  string // other than the template hash
	}
	summarise := func(p *corev1.Pod) placed {
		out := placed{hostname: p.Spec.Hostname, nodeSelector: fmt.Sprint(p.Spec.NodeSelector), tolerations: len(p.Spec.Tolerations)}
		switch a := p.Spec.Affinity; {
		case a == nil:
			out.affinity = "none"
		case a.PodAntiAffinity != nil && a.NodeAffinity == nil:
			term := a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
			if len(term) == 1 && term[0].Weight == 100 && term[0].PodAffinityTerm.TopologyKey == "kubernetes.io/hostname" &&
				len(a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 {
				out.affinity = "spread"
			} else {
				out.affinity = "other anti-affinity"
			}
		case a.NodeAffinity != nil:
			out.affinity = "own"
		}
		var ann []string
		for k, v := range p.Annotations {
			if k != AnnotationTemplateHash {
				ann = append(ann, k+"="+v)
			}
		}
		slices.Sort(ann)
		out.annotations = strings.Join(ann, ",")
		return out
	}
	for _, tc := range []struct {
		name      string
		placement licensehav1.Placement
		want      placed
	}{
		{name: "none", want: placed{hostname: "a", nodeSelector: "map[]", affinity: "spread"}},
		{name: "node selector and tolerations",
			placement: licensehav1.Placement{NodeSelector: map[string]string{"zone": "a"}, Tolerations: tol},
			want:      placed{hostname: "a", nodeSelector: "map[zone:a]", tolerations: 1, affinity: "spread"}},
		{name: "own affinity replaces the default spread", placement: licensehav1.Placement{Affinity: custom},
			want: placed{hostname: "a", nodeSelector: "map[]", affinity: "own"}},
		{name: "hostname", placement: licensehav1.Placement{Hostname: "lmgrd-host"},
			want: placed{hostname: "lmgrd-host", nodeSelector: "map[]", affinity: "spread"}},
		{name: "MAC address under the default annotation", placement: licensehav1.Placement{MACAddress: "02:42:ac:11:00:02"},
			want: placed{hostname: "a", nodeSelector: "map[]", affinity: "spread", annotations: "cni.projectcalico.org/hwAddr=02:42:ac:11:00:02"}},
		{name: "MAC address under the CNI's own annotation",
			placement: licensehav1.Placement{MACAddress: "02:42:ac:11:00:02", MACAddressAnnotation: "k8s.v1.cni.cncf.io/mac"},
			want:      placed{hostname: "a", nodeSelector: "map[]", affinity: "spread", annotations: "k8s.v1.cni.cncf.io/mac=02:42:ac:11:00:02"}},
		{name: "an annotation name without a MAC address sets nothing",
			placement: licensehav1.Placement{MACAddressAnnotation: "k8s.v1.cni.cncf.io/mac"},
			want:      placed{hostname: "a", nodeSelector: "map[]", affinity: "spread"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := fixtureTriad()
			tr.Spec.Members[0].Placement = tc.placement
			g := FromTriad(tr)
			if got := summarise(Pod(g, g.Members[0], Options{Image: opImage})); got != tc.want {
				t.Errorf("member a\n got %+v\nwant %+v", got, tc.want)
			}
			// The other members keep the defaults.
			if got, want := summarise(Pod(g, g.Members[1], Options{Image: opImage})),
				(placed{hostname: "b", nodeSelector: "map[]", affinity: "spread"}); got != want {
				t.Errorf("member b\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestPodProbes: readiness and liveness are the agent's, on its named port,
// with the timing that takes a failed active out of the Service quickly.
func TestPodProbes(t *testing.T) {
	g := FromPair(fixturePair())
	c := Pod(g, g.Members[0], Options{Image: opImage}).Spec.Containers[0]
	for _, tc := range []struct {
		name                    string
		probe                   *corev1.Probe
		path                    string
		period, failureTreshold int32
	}{
		{name: "readiness", probe: c.ReadinessProbe, path: "/readyz", period: 2, failureTreshold: 2},
		{name: "liveness", probe: c.LivenessProbe, path: "/healthz", period: 10, failureTreshold: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.probe
			if p == nil || p.HTTPGet == nil {
				t.Fatalf("probe %+v, want an HTTP GET", p)
			}
			if p.HTTPGet.Path != tc.path || p.HTTPGet.Port.StrVal != "agent" || p.PeriodSeconds != tc.period ||
				p.FailureThreshold != tc.failureTreshold || p.Exec != nil || p.TCPSocket != nil {
				t.Errorf("probe %+v, want GET %s on port agent every %ds, failing after %d", p, tc.path, tc.period, tc.failureTreshold)
			}
		})
	}
	if c.StartupProbe != nil {
		t.Errorf("startup probe %+v: none expected", c.StartupProbe)
	}
}

// TestPodVolumesAndMounts: every volume of the member pod, its source and
// where the server container mounts it, for the data folder's variants.
func TestPodVolumesAndMounts(t *testing.T) {
	describe := func(p *corev1.Pod) []string {
		mounts := map[string]corev1.VolumeMount{}
		for _, m := range p.Spec.Containers[0].VolumeMounts {
			mounts[m.Name] = m
		}
		var out []string
		for _, v := range p.Spec.Volumes {
			src := "?"
			switch {
			case v.EmptyDir != nil:
				src = "emptyDir"
			case v.PersistentVolumeClaim != nil:
				src = "pvc " + v.PersistentVolumeClaim.ClaimName
			case v.Secret != nil:
				src = fmt.Sprintf("secret %s %o", v.Secret.SecretName, ptr.Deref(v.Secret.DefaultMode, 0))
			case v.ConfigMap != nil:
				src = "configMap " + v.ConfigMap.Name
			}
			m, ok := mounts[v.Name]
			at := "unmounted"
			if ok {
				at = m.MountPath
				if m.ReadOnly {
					at += " ro"
				}
			}
			out = append(out, v.Name+": "+src+" at "+at)
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		triad  func(*licensehav1.LicenseTriad)
		member int
		want   []string
	}{{
		name:  "defaults: data in an emptyDir at the default path",
		triad: func(*licensehav1.LicenseTriad) {},
		want: []string{
			"agent: emptyDir at /licenseha ro",
			"data: emptyDir at /var/lib/licenseha",
			"licenses: secret plant-licenses 440 at /etc/licenseha/licenses ro",
			"config: configMap plant-config at /etc/licenseha/config ro",
			"admin: secret plant-admin 440 at /etc/licenseha/admin ro",
			"tmp: emptyDir at /tmp",
		},
	}, {
		name: "storage and an own data path: the member's claim there",
		triad: func(tr *licensehav1.LicenseTriad) {
			tr.Spec.Storage = &licensehav1.StorageSpec{}
			tr.Spec.Server.DataPath = "/srv/flexlm"
			tr.Spec.LicenseSecretRef.Name = "lic"
		},
		member: 2,
		want: []string{
			"agent: emptyDir at /licenseha ro",
			"data: pvc plant-c-data at /srv/flexlm",
			"licenses: secret lic 440 at /etc/licenseha/licenses ro",
			"config: configMap plant-config at /etc/licenseha/config ro",
			"admin: secret plant-admin 440 at /etc/licenseha/admin ro",
			"tmp: emptyDir at /tmp",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := fixtureTriad()
			tc.triad(tr)
			g := FromTriad(tr)
			pod := Pod(g, g.Members[tc.member], Options{Image: opImage})
			if got := describe(pod); !slices.Equal(got, tc.want) {
				t.Errorf("volumes\n got %q\nwant %q", got, tc.want)
			}
			if got := len(pod.Spec.Containers[0].VolumeMounts); got != len(tc.want) {
				t.Errorf("%d mounts for %d volumes", got, len(tc.want))
			}
			initMounts := pod.Spec.InitContainers[0].VolumeMounts
			if len(initMounts) != 1 || initMounts[0].Name != "agent" || initMounts[0].MountPath != "/licenseha" || initMounts[0].ReadOnly {
				t.Errorf("init container mounts %+v, want the agent volume writable at /licenseha", initMounts)
			}
		})
	}
	// A pair's sides mount their own licence Secrets.
	p := fixturePair()
	g := FromPair(p)
	for i, want := range []string{"plant-main", "plant-backup"} {
		pod := Pod(g, g.Members[i], Options{Image: opImage})
		if v := volumeNamed(pod, "licenses"); v == nil || v.Secret == nil || v.Secret.SecretName != want {
			t.Errorf("%s licence volume %+v, want Secret %s", pod.Name, v, want)
		}
	}
}

// TestPodSecurityAndIdentity: the pod-level settings every member pod has.
func TestPodSecurityAndIdentity(t *testing.T) {
	for _, tc := range []struct {
		name string
		g    Group
		sa   string
		sub  string
	}{
		{name: "triad", g: FromTriad(fixtureTriad()), sa: "plant-agent", sub: "plant-members"},
		{name: "pair", g: FromPair(fixturePair()), sa: "plant-agent", sub: "plant-members"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := Pod(tc.g, tc.g.Members[0], Options{Image: opImage})
			s := pod.Spec
			if s.ServiceAccountName != tc.sa || s.Subdomain != tc.sub || !ptr.Deref(s.AutomountServiceAccountToken, false) {
				t.Errorf("service account %q (automount %v), subdomain %q", s.ServiceAccountName, s.AutomountServiceAccountToken, s.Subdomain)
			}
			if ptr.Deref(s.EnableServiceLinks, true) || s.RestartPolicy != corev1.RestartPolicyAlways ||
				ptr.Deref(s.TerminationGracePeriodSeconds, 0) != 30 || s.HostNetwork || s.HostPID {
				t.Errorf("pod spec: service links %v, restart %s, grace %v, host network %v", s.EnableServiceLinks, s.RestartPolicy,
					s.TerminationGracePeriodSeconds, s.HostNetwork)
			}
			psc := s.SecurityContext
			if ptr.Deref(psc.RunAsUser, 0) != 65532 || ptr.Deref(psc.RunAsGroup, 0) != 65532 || ptr.Deref(psc.FSGroup, 0) != 65532 {
				t.Errorf("pod runs as %v:%v with fsGroup %v, want the nonroot user 65532", psc.RunAsUser, psc.RunAsGroup, psc.FSGroup)
			}
			for _, c := range append(slices.Clone(s.InitContainers), s.Containers...) {
				if c.SecurityContext.RunAsUser != nil && *c.SecurityContext.RunAsUser == 0 {
					t.Errorf("container %s runs as root", c.Name)
				}
			}
			initC := s.InitContainers[0]
			if initC.Name != "install-agent" || !slices.Equal(initC.Command, []string{"/usr/local/bin/agent", "install", group.AgentPath}) {
				t.Errorf("init container %s runs %q", initC.Name, initC.Command)
			}
			if s.Containers[0].Name != "server" {
				t.Errorf("container %q, want server", s.Containers[0].Name)
			}
		})
	}
}

// TestPodAgentArgs: the agent's own flags, before "--", per group kind and
// the options that change them.
func TestPodAgentArgs(t *testing.T) {
	for _, tc := range []struct {
		name   string
		g      func() Group
		member int
		opts   Options
		want   []string
	}{{
		name: "triad, reference server",
		g:    func() Group { return FromTriad(fixtureTriad()) },
		want: []string{group.AgentPath, "run", "--group-kind=LicenseTriad", "--group=plant", "--member=a", "--data-dir=/var/lib/licenseha"},
	}, {
		name: "pair backup, own data path",
		g: func() Group {
			p := fixturePair()
			p.Spec.Server.DataPath = "/data"
			return FromPair(p)
		},
		member: 1,
		want:   []string{group.AgentPath, "run", "--group-kind=LicenseBackupPair", "--group=plant", "--member=backup", "--data-dir=/data"},
	}, {
		name: "vendor command: fenced by stopping it; token exposed",
		g: func() Group {
			tr := fixtureTriad()
			tr.Spec.Server.Command = []string{"/opt/lmgrd"}
			return FromTriad(tr)
		},
		member: 2, opts: Options{ExposeServerToken: true},
		want: []string{group.AgentPath, "run", "--group-kind=LicenseTriad", "--group=plant", "--member=c", "--data-dir=/var/lib/licenseha",
			"--stop-to-fence", "--hide-token=false"},
	}, {
		name: "args alone do not make a vendor server",
		g: func() Group {
			tr := fixtureTriad()
			tr.Spec.Server.Args = []string{"--verbose"}
			return FromTriad(tr)
		},
		want: []string{group.AgentPath, "run", "--group-kind=LicenseTriad", "--group=plant", "--member=a", "--data-dir=/var/lib/licenseha"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g()
			opts := tc.opts
			opts.Image = opImage
			cmd := Pod(g, g.Members[tc.member], opts).Spec.Containers[0].Command
			sep := slices.Index(cmd, "--")
			if sep < 0 {
				t.Fatalf("command %q has no --", cmd)
			}
			if got := cmd[:sep]; !slices.Equal(got, tc.want) {
				t.Errorf("agent args\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestTemplateHash: the hash is stable for the same pod, ignores labels (the
// role label moves at run time) and its own annotation, and changes with the
// spec and the other annotations.
func TestTemplateHash(t *testing.T) {
	base := func() *corev1.Pod {
		g := FromTriad(fixtureTriad())
		return Pod(g, g.Members[0], Options{Image: opImage})
	}
	want := base().Annotations[AnnotationTemplateHash]
	if len(want) != 16 || strings.Trim(want, "0123456789abcdef") != "" {
		t.Fatalf("hash %q, want 16 hex digits", want)
	}
	for _, tc := range []struct {
		name    string
		mutate  func(*corev1.Pod)
		changes bool
	}{
		{name: "unchanged", mutate: func(*corev1.Pod) {}},
		{name: "role label moved", mutate: func(p *corev1.Pod) { p.Labels[licensehav1.LabelRole] = licensehav1.RoleLabelActive }},
		{name: "hash annotation rewritten", mutate: func(p *corev1.Pod) { p.Annotations[AnnotationTemplateHash] = "x" }},
		{name: "another annotation", mutate: func(p *corev1.Pod) { p.Annotations["x"] = "y" }, changes: true},
		{name: "server image", mutate: func(p *corev1.Pod) { p.Spec.Containers[0].Image = "other" }, changes: true},
		{name: "a volume", mutate: func(p *corev1.Pod) { p.Spec.Volumes = p.Spec.Volumes[1:] }, changes: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.mutate(p)
			if changed := templateHash(p) != want; changed != tc.changes {
				t.Errorf("hash changed: %v, want %v", changed, tc.changes)
			}
		})
	}
}
