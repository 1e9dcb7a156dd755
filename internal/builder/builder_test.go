package builder

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/testfixtures"
)

// The tables below run every builder over the same groups: a minimal and an
// all-features triad and pair, and a triad and a pair with the longest names
// the CRDs admit. Each test checks what a user relies on, across objects
// where they must agree (a Service selects the pods it should, the Role
// names the objects the pods use, the NetworkPolicy admits the ports the
// pods listen on).

const opImage = "ghcr.io/licenseha/licenseha:1.2.3"

// The longest names the CRDs admit: a group name of 55 characters, and
// <triad>-<member> of 63.
var (
	longName    = "l" + strings.Repeat("o", 53) + "g"
	longMembers = []string{"alpha01", "bravo02", "charlie"}
)

func fixtureTriad() *licensehav1.LicenseTriad {
	t := testfixtures.Triad("printing", "plant")
	t.UID = "uid-triad"
	return t
}

func fixturePair() *licensehav1.LicenseBackupPair {
	p := testfixtures.Pair("printing", "plant")
	p.UID = "uid-pair"
	return p
}

// allFeatures sets every optional part of a group's spec that shapes its
// objects.
func allFeatures(server *licensehav1.ServerSpec, storage **licensehav1.StorageSpec, svc *licensehav1.ServiceSpec,
	access **licensehav1.ClientAccessSpec, np **licensehav1.NetworkPolicySpec) {
	*server = licensehav1.ServerSpec{
		Image: "vendor.example/lmgrd:11", ImagePullPolicy: corev1.PullAlways,
		Args: []string{"--verbose"}, Port: 27000, DataPath: "/srv/lic",
		Env: []corev1.EnvVar{{Name: "LM_LICENSE_FILE", Value: "/etc/licenseha/licenses"}},
	}
	*storage = &licensehav1.StorageSpec{Size: ptr.To(resource.MustParse("5Gi")), StorageClassName: ptr.To("fast")}
	*svc = licensehav1.ServiceSpec{Type: licensehav1.ServiceTypeLoadBalancer, Annotations: map[string]string{"lb.example/internal": "true"}}
	*access = &licensehav1.ClientAccessSpec{
		TokenSecretRef: &licensehav1.TokenSecretReference{Name: "plant-tokens"},
		TLS:            &licensehav1.ClientTLSSpec{SecretRef: &licensehav1.LocalObjectReference{Name: "plant-tls"}},
	}
	*np = &licensehav1.NetworkPolicySpec{Enabled: true}
}

type groupCase struct {
	name string
	g    Group
	// uid is the owner's UID; kind is its kind.
	uid, kind string
}

func groupCases() []groupCase {
	full := fixtureTriad()
	allFeatures(&full.Spec.Server, &full.Spec.Storage, &full.Spec.Service, &full.Spec.ClientAccess, &full.Spec.NetworkPolicy)
	full.Spec.Members[0].Placement = licensehav1.Placement{Hostname: "lic-a", MACAddress: "02:00:00:00:00:0a",
		NodeSelector: map[string]string{"zone": "a"}}

	long := testfixtures.Triad("printing", longName)
	long.UID = "uid-long"
	for i, m := range longMembers {
		long.Spec.Members[i].Name = m
	}

	fullPair := fixturePair()
	fullPair.Spec.Mode = licensehav1.ActivePassive
	allFeatures(&fullPair.Spec.Server, &fullPair.Spec.Storage, &fullPair.Spec.Service, &fullPair.Spec.ClientAccess, &fullPair.Spec.NetworkPolicy)
	fullPair.Spec.ClientAccess.TLS = &licensehav1.ClientTLSSpec{CertManager: &licensehav1.CertManagerSpec{
		IssuerRef: licensehav1.CertManagerIssuerReference{Name: "ca"}}}
	fullPair.Spec.Backup.Placement = licensehav1.Placement{MACAddress: "02:00:00:00:00:0b", MACAddressAnnotation: "example.com/mac"}

	longPair := testfixtures.Pair("printing", longName)
	longPair.UID = "uid-long-pair"

	return []groupCase{
		{name: "triad, minimal", g: FromTriad(fixtureTriad()), uid: "uid-triad", kind: group.KindTriad},
		{name: "triad, all features", g: FromTriad(full), uid: "uid-triad", kind: group.KindTriad},
		{name: "triad, longest names", g: FromTriad(long), uid: "uid-long", kind: group.KindTriad},
		{name: "pair, minimal", g: FromPair(fixturePair()), uid: "uid-pair", kind: group.KindBackupPair},
		{name: "pair, all features", g: FromPair(fullPair), uid: "uid-pair", kind: group.KindBackupPair},
		{name: "pair, longest name", g: FromPair(longPair), uid: "uid-long-pair", kind: group.KindBackupPair},
	}
}

// checkMeta checks what every object of a group carries: its name and
// namespace, the group's labels, and the group as its only, controlling
// owner (so it is deleted with the group and the group is woken by it).
func checkMeta(t *testing.T, tc groupCase, what string, m metav1.ObjectMeta, name string) {
	t.Helper()
	if m.Name != name || m.Namespace != tc.g.Namespace {
		t.Errorf("%s is %s/%s, want %s/%s", what, m.Namespace, m.Name, tc.g.Namespace, name)
	}
	if errs := validation.IsDNS1123Subdomain(m.Name); len(errs) > 0 {
		t.Errorf("%s name %q is invalid: %v", what, m.Name, errs)
	}
	for k, v := range Labels(tc.g) {
		if m.Labels[k] != v {
			t.Errorf("%s label %s = %q, want %q", what, k, m.Labels[k], v)
		}
	}
	for k, v := range m.Labels {
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("%s label %s=%q is invalid: %v", what, k, v, errs)
		}
	}
	refs := m.OwnerReferences
	if len(refs) != 1 || string(refs[0].UID) != tc.uid || refs[0].Kind != tc.kind || refs[0].Name != tc.g.Name ||
		refs[0].APIVersion != licensehav1.GroupVersion.String() || !ptr.Deref(refs[0].Controller, false) ||
		!ptr.Deref(refs[0].BlockOwnerDeletion, false) {
		t.Errorf("%s owner references %+v, want the %s %s (uid %s) as controller", what, refs, tc.kind, tc.g.Name, tc.uid)
	}
}

func containerPort(c corev1.Container, name string) *corev1.ContainerPort {
	for i := range c.Ports {
		if c.Ports[i].Name == name {
			return &c.Ports[i]
		}
	}
	return nil
}

func flagValue(args []string, flag string) (string, bool) {
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, flag+"="); ok {
			return v, true
		}
	}
	return "", false
}

func TestPodTable(t *testing.T) {
	for _, tc := range groupCases() {
		for _, m := range tc.g.Members {
			t.Run(tc.name+"/"+m.Name, func(t *testing.T) {
				g := tc.g
				pod := Pod(g, m, Options{Image: opImage})
				checkMeta(t, tc, "pod", pod.ObjectMeta, group.PodName(g.Name, m.Name))
				if pod.Labels[licensehav1.LabelMember] != m.Name || pod.Labels[licensehav1.LabelRole] != licensehav1.RoleLabelStandby {
					t.Errorf("labels %v: want member %s, starting as standby", pod.Labels, m.Name)
				}
				if pod.Annotations[AnnotationTemplateHash] == "" {
					t.Error("no template hash: a changed spec would not roll the member")
				}
				if m.Placement.MACAddress != "" {
					ann := m.Placement.MACAddressAnnotation
					if ann == "" {
						ann = licensehav1.DefaultMACAddressAnnotation
					}
					if pod.Annotations[ann] != m.Placement.MACAddress {
						t.Errorf("annotations %v: want %s=%s", pod.Annotations, ann, m.Placement.MACAddress)
					}
				}

				// Identity and DNS: <hostname>.<group>-members.
				spec := pod.Spec
				wantHost := m.Name
				if m.Placement.Hostname != "" {
					wantHost = m.Placement.Hostname
				}
				if spec.Hostname != wantHost || spec.Subdomain != group.MembersServiceName(g.Name) {
					t.Errorf("hostname %q subdomain %q, want %q and %q", spec.Hostname, spec.Subdomain, wantHost, group.MembersServiceName(g.Name))
				}
				for _, n := range []string{spec.Hostname, spec.Subdomain} {
					if errs := validation.IsDNS1123Label(n); len(errs) > 0 {
						t.Errorf("%q is no DNS label: %v", n, errs)
					}
				}
				if spec.ServiceAccountName != AgentServiceAccount(g).Name {
					t.Errorf("service account %q, want the agents' %q", spec.ServiceAccountName, AgentServiceAccount(g).Name)
				}
				if len(spec.NodeSelector) > 0 && len(m.Placement.NodeSelector) == 0 {
					t.Errorf("node selector %v without placement", spec.NodeSelector)
				}
				for k, v := range m.Placement.NodeSelector {
					if spec.NodeSelector[k] != v {
						t.Errorf("node selector %v lacks %s=%s", spec.NodeSelector, k, v)
					}
				}
				if spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil ||
					!labels.SelectorFromSet(spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution[0].PodAffinityTerm.LabelSelector.MatchLabels).
						Matches(labels.Set(pod.Labels)) {
					t.Errorf("affinity %+v: want the members spread over nodes by the group's labels", spec.Affinity)
				}

				// Security: the "restricted" Pod Security Standard.
				psc := spec.SecurityContext
				if psc == nil || !ptr.Deref(psc.RunAsNonRoot, false) || psc.SeccompProfile == nil ||
					psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
					t.Errorf("pod security context %+v", psc)
				}
				if len(spec.InitContainers) != 1 || len(spec.Containers) != 1 {
					t.Fatalf("%d init containers and %d containers, want 1 and 1", len(spec.InitContainers), len(spec.Containers))
				}
				for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
					sc := c.SecurityContext
					if sc == nil || !ptr.Deref(sc.RunAsNonRoot, false) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
						ptr.Deref(sc.AllowPrivilegeEscalation, true) || ptr.Deref(sc.Privileged, false) ||
						sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
						t.Errorf("container %s security context %+v", c.Name, sc)
					}
				}

				// Images: the agent from the operator's image, the server
				// from spec.server.image (default: the operator's image).
				initC, server := spec.InitContainers[0], spec.Containers[0]
				if initC.Image != opImage {
					t.Errorf("agent installed from %q, want %q", initC.Image, opImage)
				}
				wantImage, wantPull := opImage, corev1.PullIfNotPresent
				if g.Server.Image != "" {
					wantImage = g.Server.Image
				}
				if g.Server.ImagePullPolicy != "" {
					wantPull = g.Server.ImagePullPolicy
				}
				if server.Image != wantImage || server.ImagePullPolicy != wantPull {
					t.Errorf("server image %q (%s), want %q (%s)", server.Image, server.ImagePullPolicy, wantImage, wantPull)
				}

				// Ports: the clients' (TCP), the agents' HTTP (TCP) and
				// heartbeats between members (UDP).
				wantPort := int32(licensehav1.DefaultServerPort)
				if g.Server.Port != 0 {
					wantPort = g.Server.Port
				}
				for _, p := range []corev1.ContainerPort{
					{Name: "license", ContainerPort: wantPort, Protocol: corev1.ProtocolTCP},
					{Name: "agent", ContainerPort: group.AgentHTTPPort, Protocol: corev1.ProtocolTCP},
					{Name: "peer", ContainerPort: group.AgentPeerPort, Protocol: corev1.ProtocolUDP},
				} {
					if got := containerPort(server, p.Name); got == nil || *got != p {
						t.Errorf("port %s = %+v, want %+v", p.Name, got, p)
					}
				}

				// Probes: the agent answers them, on its named port.
				for what, pr := range map[string]*corev1.Probe{"/readyz": server.ReadinessProbe, "/healthz": server.LivenessProbe} {
					if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != what || containerPort(server, pr.HTTPGet.Port.StrVal) == nil {
						t.Errorf("probe %s = %+v", what, pr)
					}
				}
				if server.ReadinessProbe.PeriodSeconds*server.ReadinessProbe.FailureThreshold > 5 {
					t.Errorf("readiness probe %+v: an active member that stops serving must leave the Service within 5 s", server.ReadinessProbe)
				}

				// Command: the agent runs first and supervises the server
				// command after "--".
				cmd := server.Command
				sep := slices.Index(cmd, "--")
				if len(cmd) < 2 || cmd[0] != group.AgentPath || cmd[1] != "run" || sep < 0 {
					t.Fatalf("command %q: want %s run ... -- <server>", cmd, group.AgentPath)
				}
				agentArgs := cmd[:sep]
				for flag, want := range map[string]string{"--group-kind": g.Kind, "--group": g.Name, "--member": m.Name, "--data-dir": dataPath(g)} {
					if got, _ := flagValue(agentArgs, flag); got != want {
						t.Errorf("agent %s = %q, want %q", flag, got, want)
					}
				}
				if !slices.Equal(cmd[sep+1:], ServerCommand(g, m)) {
					t.Errorf("server command %q, want %q", cmd[sep+1:], ServerCommand(g, m))
				}
				if n := len(g.Server.Args); n > 0 && !slices.Equal(cmd[len(cmd)-n:], g.Server.Args) {
					t.Errorf("command %q does not end with spec.server.args %q", cmd, g.Server.Args)
				}
				env := map[string]bool{}
				for _, e := range server.Env {
					env[e.Name] = true
				}
				for _, e := range append([]string{"POD_NAME", "POD_NAMESPACE", "POD_IP"}, envNames(g.Server.Env)...) {
					if !env[e] {
						t.Errorf("env %v lacks %s", server.Env, e)
					}
				}

				// Volumes: every mount has its volume; only the data and
				// /tmp are writable; the licences come from the member's
				// own Secret.
				vols := map[string]corev1.Volume{}
				for _, v := range spec.Volumes {
					vols[v.Name] = v
				}
				for _, mt := range server.VolumeMounts {
					if _, ok := vols[mt.Name]; !ok {
						t.Errorf("mount %s has no volume", mt.Name)
					}
					if writable := mt.Name == volData || mt.Name == volTmp; mt.ReadOnly == writable {
						t.Errorf("mount %s at %s: read-only %v", mt.Name, mt.MountPath, mt.ReadOnly)
					}
				}
				if s := vols[volLicenses].Secret; s == nil || s.SecretName != m.LicenseSecret || m.LicenseSecret == "" {
					t.Errorf("licence volume %+v, want Secret %q", vols[volLicenses], m.LicenseSecret)
				}
				if s := vols[volAdmin].Secret; s == nil || s.SecretName != AdminSecret(g, "").Name {
					t.Errorf("admin volume %+v, want Secret %q", vols[volAdmin], AdminSecret(g, "").Name)
				}
				if c := vols[volConfig].ConfigMap; c == nil || c.Name != group.ConfigName(g.Name) {
					t.Errorf("config volume %+v, want ConfigMap %q", vols[volConfig], group.ConfigName(g.Name))
				}
				data := vols[volData]
				if pvc := PVC(g, m); pvc != nil {
					if data.PersistentVolumeClaim == nil || data.PersistentVolumeClaim.ClaimName != pvc.Name {
						t.Errorf("data volume %+v, want claim %s", data, pvc.Name)
					}
				} else if data.EmptyDir == nil {
					t.Errorf("data volume %+v, want an emptyDir without storage", data)
				}
			})
		}
	}
}

func envNames(env []corev1.EnvVar) []string {
	var out []string
	for _, e := range env {
		out = append(out, e.Name)
	}
	return out
}

// TestPodRollsOnSpecChanges: the template hash changes exactly when the pod
// must be replaced.
func TestPodRollsOnSpecChanges(t *testing.T) {
	base := func() *licensehav1.LicenseTriad { return fixtureTriad() }
	hash := func(tr *licensehav1.LicenseTriad, opts Options) string {
		g := FromTriad(tr)
		return Pod(g, g.Members[0], opts).Annotations[AnnotationTemplateHash]
	}
	before := hash(base(), Options{Image: opImage})
	for _, tc := range []struct {
		name   string
		mutate func(*licensehav1.LicenseTriad)
		opts   Options
		rolls  bool
	}{
		{name: "nothing changes", mutate: func(*licensehav1.LicenseTriad) {}},
		{name: "the server image", mutate: func(t *licensehav1.LicenseTriad) { t.Spec.Server.Image = "vendor/x:2" }, rolls: true},
		{name: "the server args", mutate: func(t *licensehav1.LicenseTriad) { t.Spec.Server.Args = []string{"-v"} }, rolls: true},
		{name: "the member's node", mutate: func(t *licensehav1.LicenseTriad) {
			t.Spec.Members[0].Placement.NodeSelector = map[string]string{"zone": "b"}
		}, rolls: true},
		{name: "the MAC address", mutate: func(t *licensehav1.LicenseTriad) { t.Spec.Members[0].Placement.MACAddress = "02:00:00:00:00:01" }, rolls: true},
		{name: "the operator image", mutate: func(*licensehav1.LicenseTriad) {}, opts: Options{Image: "ghcr.io/licenseha/licenseha:1.2.4"}, rolls: true},
		{name: "another member's placement", mutate: func(t *licensehav1.LicenseTriad) { t.Spec.Members[1].Placement.Hostname = "lic-b" }},
		{name: "the timing (read from the ConfigMap)", mutate: func(t *licensehav1.LicenseTriad) { t.Spec.Failover.PeerTimeoutSeconds = 5 }},
		{name: "the Service type", mutate: func(t *licensehav1.LicenseTriad) { t.Spec.Service.Type = licensehav1.ServiceTypeNodePort }},
		{name: "a supervised service", mutate: func(t *licensehav1.LicenseTriad) {
			t.Spec.Server.Command = []string{"/opt/lm/lmserver"}
			t.Spec.Server.Services = []licensehav1.ServerService{{Name: "helper", Command: []string{"/opt/lm/helper"}}}
		}, rolls: true},
		{name: "an extra volume", mutate: func(t *licensehav1.LicenseTriad) {
			t.Spec.Server.Volumes = []licensehav1.ServerVolume{{Name: "capture", MountPath: "/srv/capture", EmptyDir: &licensehav1.EmptyDirVolume{}}}
		}, rolls: true},
		{name: "the synced folders (read from the ConfigMap)", mutate: func(t *licensehav1.LicenseTriad) {
			t.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "db"}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := base()
			tc.mutate(tr)
			opts := tc.opts
			if opts.Image == "" {
				opts.Image = opImage
			}
			if rolled := hash(tr, opts) != before; rolled != tc.rolls {
				t.Errorf("the pod rolls: %v, want %v", rolled, tc.rolls)
			}
		})
	}
}

func TestServicesTable(t *testing.T) {
	for _, tc := range groupCases() {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			// The member pods, member 0 labelled active by its agent.
			var pods []*corev1.Pod
			for i, m := range g.Members {
				p := Pod(g, m, Options{Image: opImage})
				if i == 0 {
					p.Labels[licensehav1.LabelRole] = licensehav1.RoleLabelActive
				}
				pods = append(pods, p)
			}
			selected := func(svc *corev1.Service) []string {
				var names []string
				for _, p := range pods {
					if labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(p.Labels)) {
						names = append(names, p.Name)
					}
				}
				return names
			}
			var all []string
			for _, p := range pods {
				all = append(all, p.Name)
			}

			svcs := Services(g)
			want := map[string][]string{
				group.ServiceName(g.Name): {pods[0].Name}, // the active member only
			}
			if g.Kind == group.KindBackupPair {
				want[group.PodName(g.Name, "main")] = []string{group.PodName(g.Name, "main")}
				want[group.PodName(g.Name, "backup")] = []string{group.PodName(g.Name, "backup")}
			} else {
				want[group.MembersServiceName(g.Name)] = all
			}
			if len(svcs) != len(want) {
				t.Fatalf("%d Services, want %d", len(svcs), len(want))
			}
			for _, svc := range svcs {
				checkMeta(t, tc, "Service", svc.ObjectMeta, svc.Name)
				if errs := validation.IsDNS1035Label(svc.Name); len(errs) > 0 {
					t.Errorf("Service name %q: %v", svc.Name, errs)
				}
				w, ok := want[svc.Name]
				if !ok {
					t.Errorf("unexpected Service %s", svc.Name)
					continue
				}
				if got := selected(svc); !slices.Equal(got, w) {
					t.Errorf("Service %s selects %v, want %v", svc.Name, got, w)
				}
				// Every port reaches a port the pods listen on, with the
				// same protocol.
				for _, sp := range svc.Spec.Ports {
					cp := containerPort(pods[0].Spec.Containers[0], sp.TargetPort.StrVal)
					if cp == nil || cp.Protocol != sp.Protocol || (sp.Name == "license" && sp.Port != cp.ContainerPort) {
						t.Errorf("Service %s port %+v does not reach a pod port (%+v)", svc.Name, sp, cp)
					}
				}
				headless := svc.Name == group.MembersServiceName(g.Name)
				if headless {
					if svc.Spec.ClusterIP != corev1.ClusterIPNone || !svc.Spec.PublishNotReadyAddresses {
						t.Errorf("members Service %+v: want headless, publishing members before they are ready", svc.Spec)
					}
					var peer *corev1.ServicePort
					for i := range svc.Spec.Ports {
						if svc.Spec.Ports[i].Name == "peer" {
							peer = &svc.Spec.Ports[i]
						}
					}
					if peer == nil || peer.Protocol != corev1.ProtocolUDP || peer.Port != group.AgentPeerPort {
						t.Errorf("members Service lacks the UDP heartbeat port: %+v", svc.Spec.Ports)
					}
					continue
				}
				wantType := corev1.ServiceTypeClusterIP
				if g.Service.Type != "" {
					wantType = corev1.ServiceType(g.Service.Type)
				}
				if svc.Spec.Type != wantType || len(svc.Spec.Ports) != 1 {
					t.Errorf("client Service %s: type %s, ports %+v; want %s with the licence port only", svc.Name, svc.Spec.Type, svc.Spec.Ports, wantType)
				}
				for k, v := range g.Service.Annotations {
					if svc.Annotations[k] != v {
						t.Errorf("client Service %s lacks annotation %s=%s", svc.Name, k, v)
					}
				}
			}
		})
	}
}

func TestAgentRBACTable(t *testing.T) {
	for _, tc := range groupCases() {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			sa, role, rb := AgentServiceAccount(g), AgentRole(g), AgentRoleBinding(g)
			checkMeta(t, tc, "ServiceAccount", sa.ObjectMeta, group.AgentName(g.Name))
			checkMeta(t, tc, "Role", role.ObjectMeta, group.AgentName(g.Name))
			checkMeta(t, tc, "RoleBinding", rb.ObjectMeta, group.AgentName(g.Name))
			if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name ||
				len(rb.Subjects) != 1 || rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != sa.Name ||
				rb.Subjects[0].Namespace != g.Namespace {
				t.Errorf("binding %+v, want Role %s to ServiceAccount %s/%s", rb, role.Name, g.Namespace, sa.Name)
			}

			// Each rule names the group's own objects; the agents create
			// and delete nothing and read no Secret but the synced state.
			var pods []string
			for _, m := range g.Members {
				pods = append(pods, group.PodName(g.Name, m.Name))
			}
			granted := map[string][]string{} // "<resource>/<name>" -> verbs
			for _, r := range role.Rules {
				if len(r.ResourceNames) == 0 {
					t.Errorf("rule %+v is not restricted to named objects", r)
				}
				for _, v := range r.Verbs {
					if v == "*" || v == "create" || v == "delete" || v == "deletecollection" {
						t.Errorf("rule %+v grants %s", r, v)
					}
				}
				for _, res := range r.Resources {
					for _, n := range r.ResourceNames {
						granted[res+"/"+n] = append(granted[res+"/"+n], r.Verbs...)
					}
				}
			}
			wantGrants := map[string][]string{
				"configmaps/" + group.ConfigName(g.Name): {"list", "watch"},
				"configmaps/" + StateConfigMap(g).Name:   {"list", "watch", "update"},
				"secrets/" + StateSecret(g).Name:         {"get", "list", "watch", "update", "patch"},
				"leases/" + Lease(g).Name:                {"get", "update"},
			}
			for _, p := range pods {
				wantGrants["pods/"+p] = []string{"list", "watch", "patch"}
			}
			if got, want := mustJSON(t, granted), mustJSON(t, wantGrants); got != want {
				t.Errorf("grants:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestConfigTable(t *testing.T) {
	addrs := map[string]string{"a": "10.0.0.1", "c": "10.0.0.3", "main": "10.0.1.1"}
	triad := func(mutate func(*licensehav1.LicenseTriad)) *licensehav1.LicenseTriad {
		tr := fixtureTriad()
		tr.Generation = 7
		mutate(tr)
		return tr
	}
	pair := func(mutate func(*licensehav1.LicenseBackupPair)) *licensehav1.LicenseBackupPair {
		p := fixturePair()
		p.Generation = 7
		mutate(p)
		return p
	}
	type timing struct {
		peerMs, heartbeatMs, syncS, failbackDelayS int64
		failback, mode, roles                      string
		port                                       int32
		preserve, strict                           bool
	}
	for _, tc := range []struct {
		name    string
		cfg     group.Config
		want    timing
		members []group.Member
	}{{
		name: "triad, defaults",
		cfg:  TriadConfig(triad(func(*licensehav1.LicenseTriad) {}), addrs),
		want: timing{peerMs: 2000, heartbeatMs: 250, syncS: 10, failback: "Automatic", port: licensehav1.DefaultServerPort, preserve: true},
		members: []group.Member{{Name: "a", Role: "Primary", Pod: "plant-a", Address: "10.0.0.1"},
			{Name: "b", Role: "Secondary", Pod: "plant-b"}, {Name: "c", Role: "Tertiary", Pod: "plant-c", Address: "10.0.0.3"}},
	}, {
		name: "triad, own timing, members listed out of order",
		cfg: TriadConfig(triad(func(t *licensehav1.LicenseTriad) {
			t.Spec.Failover = licensehav1.FailoverSpec{PeerTimeoutSeconds: 5, HeartbeatIntervalMilliseconds: 500,
				Failback: licensehav1.FailbackManual, FailbackDelaySeconds: 60}
			t.Spec.Sync.IntervalSeconds = 3
			t.Spec.Server.Port = 27000
			t.Spec.Members[0], t.Spec.Members[2] = t.Spec.Members[2], t.Spec.Members[0]
		}), nil),
		want: timing{peerMs: 5000, heartbeatMs: 500, syncS: 3, failbackDelayS: 60, failback: "Manual", port: 27000, preserve: true},
		members: []group.Member{{Name: "a", Role: "Primary", Pod: "plant-a"},
			{Name: "b", Role: "Secondary", Pod: "plant-b"}, {Name: "c", Role: "Tertiary", Pod: "plant-c"}},
	}, {
		name: "pair, defaults",
		cfg:  PairConfig(pair(func(*licensehav1.LicenseBackupPair) {}), addrs),
		want: timing{peerMs: 2000, heartbeatMs: 250, syncS: 30, port: licensehav1.DefaultServerPort, preserve: true},
		members: []group.Member{{Name: "main", Role: "main", Pod: "plant-main", Address: "10.0.1.1"},
			{Name: "backup", Role: "backup", Pod: "plant-backup"}},
	}, {
		name: "pair, ActivePassive: roles default to Fixed",
		cfg:  PairConfig(pair(func(p *licensehav1.LicenseBackupPair) { p.Spec.Mode = licensehav1.ActivePassive }), nil),
		want: timing{peerMs: 2000, heartbeatMs: 250, syncS: 30, port: licensehav1.DefaultServerPort, preserve: true,
			mode: "ActivePassive", roles: "Fixed"},
		members: []group.Member{{Name: "main", Role: "main", Pod: "plant-main"}, {Name: "backup", Role: "backup", Pod: "plant-backup"}},
	}, {
		name: "pair, all settings",
		cfg: PairConfig(pair(func(p *licensehav1.LicenseBackupPair) {
			p.Spec.Mode, p.Spec.Roles = licensehav1.ActivePassive, licensehav1.RolesSymmetric
			p.Spec.Failover.PeerTimeoutSeconds = 8
			p.Spec.Sync = licensehav1.PairSyncSpec{IntervalSeconds: 5, Strict: true, PreserveTimestamps: ptr.To(false)}
			p.Spec.Server.Port = 27000
		}), nil),
		want: timing{peerMs: 8000, heartbeatMs: 250, syncS: 5, port: 27000, strict: true,
			mode: "ActivePassive", roles: "Symmetric"},
		members: []group.Member{{Name: "main", Role: "main", Pod: "plant-main"}, {Name: "backup", Role: "backup", Pod: "plant-backup"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cfg
			got := timing{peerMs: c.PeerTimeoutMillis, heartbeatMs: c.HeartbeatIntervalMillis, syncS: c.SyncIntervalSeconds,
				failbackDelayS: c.FailbackDelaySeconds, failback: c.Failback, mode: c.Mode, roles: c.Roles, port: c.ServerPort,
				preserve: c.PreserveTimestamps, strict: c.SyncStrict}
			if got != tc.want {
				t.Errorf("settings\n got %+v\nwant %+v", got, tc.want)
			}
			if !slices.Equal(c.Members, tc.members) {
				t.Errorf("members\n got %+v\nwant %+v", c.Members, tc.members)
			}
			if c.Namespace != "printing" || c.Name != "plant" || c.Generation != 7 {
				t.Errorf("config of %s/%s generation %d, want printing/plant generation 7", c.Namespace, c.Name, c.Generation)
			}
		})
	}

	// The pair's mappings and sync paths reach the agents as given.
	p := fixturePair()
	p.Spec.LicenseMappings = []licensehav1.LicenseMapping{{Main: "LIC-M", Backup: "LIC-B"}}
	p.Spec.Sync.Paths = []licensehav1.SyncPath{{Path: "labels", Include: []string{"*.lbl"}, Exclude: []string{"tmp/*"}}}
	c := PairConfig(p, nil)
	if got := mustJSON(t, []any{c.LicenseMappings, c.SyncPaths}); got != `[[{"main":"LIC-M","backup":"LIC-B"}],[{"path":"labels","include":["*.lbl"],"exclude":["tmp/*"]}]]` {
		t.Errorf("mappings and paths: %s", got)
	}
}

// TestConfigMap: the agents read back exactly the configuration and keys the
// operator wrote, from the ConfigMap their pods mount and their Role lets
// them watch.
func TestConfigMap(t *testing.T) {
	for _, tc := range groupCases() {
		t.Run(tc.name, func(t *testing.T) {
			cfg := group.Config{Kind: tc.g.Kind, Name: tc.g.Name, Namespace: tc.g.Namespace, PeerTimeoutMillis: 4000,
				Members: []group.Member{{Name: tc.g.Members[0].Name, Pod: group.PodName(tc.g.Name, tc.g.Members[0].Name)}}}
			cm, err := ConfigMap(tc.g, cfg, []byte("PEM"))
			if err != nil {
				t.Fatal(err)
			}
			checkMeta(t, tc, "ConfigMap", cm.ObjectMeta, group.ConfigName(tc.g.Name))
			var back group.Config
			if err := json.Unmarshal([]byte(cm.Data[group.ConfigKey]), &back); err != nil {
				t.Fatalf("%s: %v", group.ConfigKey, err)
			}
			if mustJSON(t, back) != mustJSON(t, cfg) || cm.Data[group.TrustedKeysKey] != "PEM" {
				t.Errorf("data %v, want the configuration and the trusted keys", cm.Data)
			}
			if !strings.HasPrefix(group.TrustedKeysFile, group.ConfigDir+"/") ||
				strings.TrimPrefix(group.TrustedKeysFile, group.ConfigDir+"/") != group.TrustedKeysKey {
				t.Errorf("the server reads trusted keys from %s, the ConfigMap holds them under %s mounted at %s",
					group.TrustedKeysFile, group.TrustedKeysKey, group.ConfigDir)
			}
		})
	}
}

// TestStateObjects: the Lease, the synced-state objects and the admin Secret
// are owned by the group, named as the agents and pods expect, and created
// empty (the agents write them) except for the admin token.
func TestStateObjects(t *testing.T) {
	for _, tc := range groupCases() {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			lease, cm, sec, admin := Lease(g), StateConfigMap(g), StateSecret(g), AdminSecret(g, "s3cret")
			checkMeta(t, tc, "Lease", lease.ObjectMeta, group.LeaseName(g.Name))
			checkMeta(t, tc, "state ConfigMap", cm.ObjectMeta, group.StateName(g.Name))
			checkMeta(t, tc, "state Secret", sec.ObjectMeta, group.StateName(g.Name))
			checkMeta(t, tc, "admin Secret", admin.ObjectMeta, group.AdminSecretName(g.Name))
			if lease.Spec.HolderIdentity != nil || len(cm.Data) > 0 || len(sec.Data) > 0 {
				t.Error("the Lease and the state objects must be created empty: the agents own their content")
			}
			if sec.Type != corev1.SecretTypeOpaque || admin.Type != corev1.SecretTypeOpaque {
				t.Errorf("Secret types %s, %s", sec.Type, admin.Type)
			}
			if string(admin.Data[group.AdminTokenKey]) != "s3cret" || len(admin.Data) != 1 {
				t.Errorf("admin Secret data %v, want the token under %s", admin.Data, group.AdminTokenKey)
			}
			if group.AdminTokenFile != group.AdminTokenDir+"/"+group.AdminTokenKey {
				t.Errorf("the server reads its token from %s, not from the mounted key %s", group.AdminTokenFile, group.AdminTokenKey)
			}
		})
	}
}

func TestPVCTable(t *testing.T) {
	for _, tc := range groupCases() {
		for _, m := range tc.g.Members {
			t.Run(tc.name+"/"+m.Name, func(t *testing.T) {
				pvc := PVC(tc.g, m)
				if tc.g.Storage == nil {
					if pvc != nil {
						t.Fatalf("a claim %s without spec.storage", pvc.Name)
					}
					return
				}
				checkMeta(t, tc, "PVC", pvc.ObjectMeta, group.PVCName(tc.g.Name, m.Name))
				if pvc.Labels[licensehav1.LabelMember] != m.Name {
					t.Errorf("labels %v: want member %s", pvc.Labels, m.Name)
				}
				size := resource.MustParse("1Gi")
				if tc.g.Storage.Size != nil {
					size = *tc.g.Storage.Size
				}
				got := pvc.Spec.Resources.Requests[corev1.ResourceStorage]
				if got.Cmp(size) != 0 || !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) ||
					ptr.Deref(pvc.Spec.StorageClassName, "") != ptr.Deref(tc.g.Storage.StorageClassName, "") {
					t.Errorf("claim spec %+v, want %s RWO of class %v", pvc.Spec, size.String(), tc.g.Storage.StorageClassName)
				}
			})
		}
	}
	// A default size when spec.storage names none.
	tr := fixtureTriad()
	tr.Spec.Storage = &licensehav1.StorageSpec{}
	g := FromTriad(tr)
	if got := PVC(g, g.Members[0]).Spec.Resources.Requests[corev1.ResourceStorage]; got.String() != "1Gi" {
		t.Errorf("default size %s, want 1Gi", got.String())
	}
}

// TestNetworkPolicyAdmitsThePodsPorts: the policy selects every member pod
// and admits the ports they listen on, with their protocols; the members'
// heartbeats (UDP) only from the members.
func TestNetworkPolicyAdmitsThePodsPorts(t *testing.T) {
	for _, tc := range groupCases() {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			np := NetworkPolicy(g, Options{OperatorNamespace: "licenseha-system"})
			enabled := g.NetworkPolicy != nil && g.NetworkPolicy.Enabled
			if (np != nil) != enabled {
				t.Fatalf("NetworkPolicy %v, want one: %v", np != nil, enabled)
			}
			if !enabled {
				return
			}
			checkMeta(t, tc, "NetworkPolicy", np.ObjectMeta, group.NetworkPolicyName(g.Name))
			sel := labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels)
			for _, m := range g.Members {
				pod := Pod(g, m, Options{Image: opImage})
				if !sel.Matches(labels.Set(pod.Labels)) {
					t.Errorf("the policy does not select pod %s", pod.Name)
				}
				for _, name := range []string{"license", "peer", "agent"} {
					cp := containerPort(pod.Spec.Containers[0], name)
					admitted := false
					for _, r := range np.Spec.Ingress {
						for _, p := range r.Ports {
							if p.Port.IntVal == cp.ContainerPort && *p.Protocol == cp.Protocol {
								admitted = true
							}
						}
					}
					if !admitted {
						t.Errorf("port %s (%d/%s) of %s is not admitted", name, cp.ContainerPort, cp.Protocol, pod.Name)
					}
				}
			}
			for _, r := range np.Spec.Ingress {
				for _, p := range r.Ports {
					if *p.Protocol == corev1.ProtocolUDP && (len(r.From) != 1 || r.From[0].PodSelector == nil ||
						!labels.SelectorFromSet(r.From[0].PodSelector.MatchLabels).Matches(labels.Set(SelectorLabels(g))) ||
						r.From[0].NamespaceSelector != nil) {
						t.Errorf("heartbeats admitted from %+v, want the group's members only", r.From)
					}
				}
			}
		})
	}
}

// TestChildrenAreTheBuiltObjects: Children, which the operator checks before
// writing, names exactly the objects the builders make.
func TestChildrenAreTheBuiltObjects(t *testing.T) {
	for _, tc := range groupCases() {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			built := []string{
				"ServiceAccount/" + AgentServiceAccount(g).Name, "Role/" + AgentRole(g).Name, "RoleBinding/" + AgentRoleBinding(g).Name,
				"Secret/" + AdminSecret(g, "").Name, "ConfigMap/" + StateConfigMap(g).Name, "Secret/" + StateSecret(g).Name,
				"Lease/" + Lease(g).Name,
			}
			for _, m := range g.Members {
				if pvc := PVC(g, m); pvc != nil {
					built = append(built, "PersistentVolumeClaim/"+pvc.Name)
				}
			}
			for _, s := range Services(g) {
				built = append(built, "Service/"+s.Name)
			}
			cm, _ := ConfigMap(g, group.Config{}, nil)
			built = append(built, "ConfigMap/"+cm.Name)
			if np := NetworkPolicy(g, Options{}); np != nil {
				built = append(built, "NetworkPolicy/"+np.Name)
			}
			for _, m := range g.Members {
				built = append(built, "Pod/"+Pod(g, m, Options{}).Name)
			}
			if got := childKeys(g); !slices.Equal(got, built) {
				t.Errorf("children\n got %v\nwant %v", got, built)
			}
		})
	}
}

// TestServerCommand: the reference server is wired to the pod's port and
// mounts; a vendor command runs as given, fenced by stopping it.
func TestServerCommand(t *testing.T) {
	for _, tc := range []struct {
		name    string
		server  licensehav1.ServerSpec
		want    []string // the server command
		fenceBy string   // "--stop-to-fence" when the agent stops the server to fence it
	}{{
		name: "reference server, defaults",
		want: []string{group.ImageBinDir + "/license-server", "--listen=:5160", "--admin-listen=127.0.0.1:5161",
			"--admin-token-file=" + group.AdminTokenFile, "--data-dir=" + licensehav1.DefaultDataPath,
			"--license-dir=" + group.LicenseDir, "--trusted-keys=" + group.TrustedKeysFile,
			"--group=printing/plant", "--member=b", "--role=standby"},
	}, {
		name:   "reference server, own port, data path and args",
		server: licensehav1.ServerSpec{Port: 27000, DataPath: "/srv/lic", Args: []string{"--log-level=debug"}},
		want: []string{group.ImageBinDir + "/license-server", "--listen=:27000", "--admin-listen=127.0.0.1:5161",
			"--admin-token-file=" + group.AdminTokenFile, "--data-dir=/srv/lic",
			"--license-dir=" + group.LicenseDir, "--trusted-keys=" + group.TrustedKeysFile,
			"--group=printing/plant", "--member=b", "--role=standby", "--log-level=debug"},
	}, {
		name:    "vendor server",
		server:  licensehav1.ServerSpec{Image: "vendor/lmgrd", Command: []string{"/opt/lmgrd", "-z"}, Args: []string{"-c", "/etc/licenseha/licenses"}},
		want:    []string{"/opt/lmgrd", "-z", "-c", "/etc/licenseha/licenses"},
		fenceBy: "--stop-to-fence",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			tr := fixtureTriad()
			tr.Spec.Server = tc.server
			g := FromTriad(tr)
			m := g.Members[1]
			if got := ServerCommand(g, m); !slices.Equal(got, tc.want) {
				t.Errorf("server command\n got %q\nwant %q", got, tc.want)
			}
			cmd := Pod(g, m, Options{Image: opImage}).Spec.Containers[0].Command
			agent := cmd[:slices.Index(cmd, "--")]
			if got := slices.Contains(agent, "--stop-to-fence"); got != (tc.fenceBy != "") {
				t.Errorf("agent args %q: --stop-to-fence %v, want %v", agent, got, tc.fenceBy != "")
			}
		})
	}
}

// TestGroupView: FromTriad and FromPair give the builders one view of both
// kinds: members with their roles and licence Secrets, the owner, and the
// optional protections as set.
func TestGroupView(t *testing.T) {
	tr := fixtureTriad()
	tr.Spec.Members[2].Placement.Hostname = "lic-c"
	tr.Spec.NetworkPolicy = &licensehav1.NetworkPolicySpec{Enabled: true}
	p := fixturePair()
	p.Spec.Backup.Placement.NodeSelector = map[string]string{"site": "dr"}
	p.Spec.ClientAccess = &licensehav1.ClientAccessSpec{TokenSecretRef: &licensehav1.TokenSecretReference{Name: "tok"}}
	for _, tc := range []struct {
		name    string
		g       Group
		kind    string
		members []string // "<name>/<role>/<licence Secret>"
		owner   string
	}{
		{name: "triad", g: FromTriad(tr), kind: group.KindTriad, owner: "uid-triad",
			members: []string{"a/Primary/plant-licenses", "b/Secondary/plant-licenses", "c/Tertiary/plant-licenses"}},
		{name: "pair", g: FromPair(p), kind: group.KindBackupPair, owner: "uid-pair",
			members: []string{"main/main/plant-main", "backup/backup/plant-backup"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := tc.g
			var got []string
			for _, m := range g.Members {
				got = append(got, m.Name+"/"+m.Role+"/"+m.LicenseSecret)
			}
			if !slices.Equal(got, tc.members) {
				t.Errorf("members %v, want %v", got, tc.members)
			}
			if g.Kind != tc.kind || g.Name != "plant" || g.Namespace != "printing" || string(g.Owner.UID) != tc.owner {
				t.Errorf("group %s %s/%s owned by %s", g.Kind, g.Namespace, g.Name, g.Owner.UID)
			}
			// A triad and a pair of the same name must not select each
			// other's pods.
			if other := SelectorLabels(FromPair(fixturePair())); tc.kind == group.KindTriad &&
				labels.SelectorFromSet(other).Matches(labels.Set(SelectorLabels(g))) {
				t.Errorf("the pair's selector %v selects the triad's pods %v", other, SelectorLabels(g))
			}
			if _, ok := g.Member("zz"); ok {
				t.Error("an unknown member was found")
			}
			last := g.Members[len(g.Members)-1]
			if m, ok := g.Member(last.Name); !ok || m.Name != last.Name {
				t.Errorf("member %s not found", last.Name)
			}
		})
	}
	if g := FromTriad(tr); g.Members[2].Placement.Hostname != "lic-c" || g.NetworkPolicy == nil || g.ClientAccess != nil {
		t.Errorf("triad placement and protections not carried: %+v", g)
	}
	if g := FromPair(p); g.Members[1].Placement.NodeSelector["site"] != "dr" || g.ClientAccess == nil || g.NetworkPolicy != nil {
		t.Errorf("pair placement and protections not carried: %+v", g)
	}
}
