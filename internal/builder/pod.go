package builder

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// AnnotationTemplateHash records the hash of everything a member pod was
// built from; a pod whose hash differs from the desired one is rolled.
const AnnotationTemplateHash = "licenseha.io/template-hash"

// nonRootUID is the distroless "nonroot" user the licenseha image runs as.
const nonRootUID = 65532

// Volume names inside a member pod.
const (
	volAgent    = "agent"
	volData     = "data"
	volLicenses = "licenses"
	volConfig   = "config"
	volAdmin    = "admin"
	volTmp      = "tmp"
)

// ServerCommand is the command the agent supervises: the user's command for a
// vendor image, otherwise the reference license server wired to the pod's
// mounts (with spec.clientAccess, also to the client tokens and
// certificate). spec.server.args are appended in both cases.
func ServerCommand(g Group, m Member) []string {
	cmd := g.Server.Command
	if len(cmd) == 0 {
		cmd = []string{
			group.ImageBinDir + "/license-server",
			"--listen=:" + strconv.Itoa(int(serverPort(g))),
			fmt.Sprintf("--admin-listen=127.0.0.1:%d", group.ServerAdminPort),
			"--admin-token-file=" + group.AdminTokenFile,
			"--data-dir=" + dataPath(g),
			"--license-dir=" + group.LicenseDir,
			"--trusted-keys=" + group.TrustedKeysFile,
			"--group=" + g.Namespace + "/" + g.Name,
			"--member=" + m.Name,
			"--role=standby",
		}
		cmd = append(cmd, clientAccessFlags(g)...)
	}
	return append(append([]string{}, cmd...), g.Server.Args...)
}

func serverPort(g Group) int32 {
	if g.Server.Port == 0 {
		return licensehav1.DefaultServerPort
	}
	return g.Server.Port
}

func dataPath(g Group) string {
	if g.Server.DataPath == "" {
		return licensehav1.DefaultDataPath
	}
	return g.Server.DataPath
}

// pullSecrets are the operator's image pull secrets, then the group's,
// each once.
func pullSecrets(g Group, opts Options) []corev1.LocalObjectReference {
	var out []corev1.LocalObjectReference
	seen := map[string]bool{}
	add := func(name string) {
		if name != "" && !seen[name] {
			seen[name] = true
			out = append(out, corev1.LocalObjectReference{Name: name})
		}
	}
	for _, name := range opts.ImagePullSecrets {
		add(name)
	}
	for _, ref := range g.Server.ImagePullSecrets {
		add(ref.Name)
	}
	return out
}

// Pod is the desired pod of one member. The agent runs as the container's
// first process and supervises the server, so a vendor image needs no
// rebuild: an init container copies the agent out of the licenseha image.
func Pod(g Group, m Member, opts Options) *corev1.Pod {
	ownPull := opts.ImagePullPolicy
	if ownPull == "" {
		ownPull = corev1.PullIfNotPresent
	}
	image, pullPolicy := g.Server.Image, corev1.PullIfNotPresent
	if image == "" {
		image, pullPolicy = opts.Image, ownPull
	}
	if g.Server.ImagePullPolicy != "" {
		pullPolicy = g.Server.ImagePullPolicy
	}
	hostname := memberHostname(m)

	meta := objectMeta(g, group.PodName(g.Name, m.Name))
	meta.Labels[licensehav1.LabelMember] = m.Name
	// A new pod starts as standby; only its agent (after winning the Lease
	// and a quorum) or the operator moves the label.
	meta.Labels[licensehav1.LabelRole] = licensehav1.RoleLabelStandby
	if m.Placement.MACAddress != "" {
		ann := m.Placement.MACAddressAnnotation
		if ann == "" {
			ann = licensehav1.DefaultMACAddressAnnotation
		}
		meta.Annotations = map[string]string{ann: m.Placement.MACAddress}
	}

	agentArgs := []string{
		group.AgentPath, "run",
		"--group-kind=" + g.Kind,
		"--group=" + g.Name,
		"--member=" + m.Name,
		"--data-dir=" + dataPath(g),
	}
	if len(g.Server.Command) > 0 {
		// A vendor server has no licenseha admin API: the agent fences it
		// by running it only while the member serves.
		agentArgs = append(agentArgs, "--stop-to-fence")
	}
	for _, svc := range g.Server.Services {
		agentArgs = append(agentArgs, "--service="+group.ServiceFlag(group.Service{
			Name: svc.Name, Command: svc.Command, Always: svc.RunWhen == licensehav1.RunWhenAlways}))
	}
	if opts.ExposeServerToken {
		agentArgs = append(agentArgs, "--hide-token=false")
	}
	agentArgs = append(agentArgs, "--")

	pod := &corev1.Pod{
		ObjectMeta: meta,
		Spec: corev1.PodSpec{
			Hostname:                      hostname,
			Subdomain:                     group.MembersServiceName(g.Name),
			ServiceAccountName:            group.AgentName(g.Name),
			AutomountServiceAccountToken:  ptr.To(true),
			RestartPolicy:                 corev1.RestartPolicyAlways,
			TerminationGracePeriodSeconds: ptr.To[int64](30),
			EnableServiceLinks:            ptr.To(false),
			ImagePullSecrets:              pullSecrets(g, opts),
			NodeSelector:                  m.Placement.NodeSelector,
			Affinity:                      affinity(g, m),
			Tolerations:                   m.Placement.Tolerations,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   ptr.To(true),
				RunAsUser:      ptr.To[int64](nonRootUID),
				RunAsGroup:     ptr.To[int64](nonRootUID),
				FSGroup:        ptr.To[int64](nonRootUID),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			InitContainers: []corev1.Container{{
				Name:            "install-agent",
				Image:           opts.Image,
				ImagePullPolicy: ownPull,
				Command:         []string{group.ImageBinDir + "/agent", "install", group.AgentPath},
				VolumeMounts:    []corev1.VolumeMount{{Name: volAgent, MountPath: group.AgentDir}},
				SecurityContext: containerSecurityContext(),
				Resources: corev1.ResourceRequirements{
					Limits: corev1.ResourceList{corev1.ResourceMemory: mustQuantity("64Mi")},
				},
			}},
			Containers: []corev1.Container{{
				Name:            "server",
				Image:           image,
				ImagePullPolicy: pullPolicy,
				Command:         append(agentArgs, ServerCommand(g, m)...),
				Env:             append(downwardEnv(), g.Server.Env...),
				Resources:       g.Server.Resources,
				Ports: []corev1.ContainerPort{
					{Name: "license", ContainerPort: serverPort(g), Protocol: corev1.ProtocolTCP},
					{Name: "agent", ContainerPort: group.AgentHTTPPort, Protocol: corev1.ProtocolTCP},
					{Name: "peer", ContainerPort: group.AgentPeerPort, Protocol: corev1.ProtocolUDP},
				},
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/readyz", Port: intstr.FromString("agent")}},
					PeriodSeconds:    2,
					FailureThreshold: 2,
				},
				LivenessProbe: &corev1.Probe{
					ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("agent")}},
					PeriodSeconds:    10,
					FailureThreshold: 3,
				},
				VolumeMounts: []corev1.VolumeMount{
					{Name: volAgent, MountPath: group.AgentDir, ReadOnly: true},
					{Name: volData, MountPath: dataPath(g)},
					{Name: volLicenses, MountPath: group.LicenseDir, ReadOnly: true},
					{Name: volConfig, MountPath: group.ConfigDir, ReadOnly: true},
					{Name: volAdmin, MountPath: group.AdminTokenDir, ReadOnly: true},
					{Name: volTmp, MountPath: "/tmp"},
				},
				SecurityContext: containerSecurityContext(),
			}},
			Volumes: []corev1.Volume{
				{Name: volAgent, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
				dataVolume(g, m),
				{Name: volLicenses, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: m.LicenseSecret, DefaultMode: ptr.To[int32](0o440)}}},
				{Name: volConfig, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
					LocalObjectReference: corev1.LocalObjectReference{Name: group.ConfigName(g.Name)}}}},
				{Name: volAdmin, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
					SecretName: group.AdminSecretName(g.Name), DefaultMode: ptr.To[int32](0o440)}}},
				{Name: volTmp, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
		},
	}
	// Added only when set, so a group without clientAccess keeps the pod
	// template (and hash) it always had.
	vols, mounts := clientAccessVolumes(g)
	pod.Spec.Volumes = append(pod.Spec.Volumes, vols...)
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, mounts...)
	vols, mounts = serverVolumes(g)
	pod.Spec.Volumes = append(pod.Spec.Volumes, vols...)
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, mounts...)
	pod.Annotations = setAnnotation(pod.Annotations, AnnotationTemplateHash, templateHash(pod))
	return pod
}

// serverVolumes are spec.server.volumes as pod volumes (named
// group.VolumePrefix + name) and mounts of the server container. Whether a
// referenced object may be mounted (group.LabelMountable) is the
// operator's check before it writes a pod.
func serverVolumes(g Group) ([]corev1.Volume, []corev1.VolumeMount) {
	var vols []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, v := range g.Server.Volumes {
		name := group.VolumePrefix + v.Name
		var src corev1.VolumeSource
		switch {
		case v.PersistentVolumeClaim != nil:
			src.PersistentVolumeClaim = &corev1.PersistentVolumeClaimVolumeSource{ClaimName: v.PersistentVolumeClaim.ClaimName, ReadOnly: v.ReadOnly}
		case v.ConfigMap != nil:
			src.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: v.ConfigMap.Name}}
		case v.Secret != nil:
			src.Secret = &corev1.SecretVolumeSource{SecretName: v.Secret.Name, DefaultMode: ptr.To[int32](0o440)}
		case v.EmptyDir != nil:
			src.EmptyDir = &corev1.EmptyDirVolumeSource{SizeLimit: v.EmptyDir.SizeLimit}
		default:
			continue // the API admits no volume without a source
		}
		vols = append(vols, corev1.Volume{Name: name, VolumeSource: src})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: v.MountPath, ReadOnly: v.ReadOnly})
	}
	return vols, mounts
}

// MountedObjects lists the objects of the group's namespace that
// spec.server.volumes mounts, as kind and name (kind PersistentVolumeClaim,
// ConfigMap or Secret): each needs group.LabelMountable.
func MountedObjects(g Group) []MountedObject {
	var out []MountedObject
	for _, v := range g.Server.Volumes {
		switch {
		case v.PersistentVolumeClaim != nil:
			out = append(out, MountedObject{Field: "spec.server.volumes[" + v.Name + "].persistentVolumeClaim", Kind: "PersistentVolumeClaim", Name: v.PersistentVolumeClaim.ClaimName})
		case v.ConfigMap != nil:
			out = append(out, MountedObject{Field: "spec.server.volumes[" + v.Name + "].configMap", Kind: "ConfigMap", Name: v.ConfigMap.Name})
		case v.Secret != nil:
			out = append(out, MountedObject{Field: "spec.server.volumes[" + v.Name + "].secret", Kind: "Secret", Name: v.Secret.Name})
		}
	}
	return out
}

// MountedObject is an object spec.server.volumes mounts.
type MountedObject struct {
	// Field names the volume in the spec, for messages.
	Field, Kind, Name string
}

// downwardEnv gives the agent its pod identity.
func downwardEnv() []corev1.EnvVar {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	return []corev1.EnvVar{
		field("POD_NAME", "metadata.name"),
		field("POD_NAMESPACE", "metadata.namespace"),
		field("POD_IP", "status.podIP"),
	}
}

// containerSecurityContext passes the "restricted" Pod Security Standard.
func containerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func dataVolume(g Group, m Member) corev1.Volume {
	if g.Storage == nil {
		return corev1.Volume{Name: volData, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	}
	return corev1.Volume{Name: volData, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: group.PVCName(g.Name, m.Name)}}}
}

// affinity is the member's own affinity, or by default a preference to put
// the members of a group on different nodes: a node failure should cost a
// group one member, not its quorum. It is a preference so small clusters
// still run every member.
func affinity(g Group, m Member) *corev1.Affinity {
	if m.Placement.Affinity != nil {
		return m.Placement.Affinity
	}
	return &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
		PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
			Weight: 100,
			PodAffinityTerm: corev1.PodAffinityTerm{
				TopologyKey:   corev1.LabelHostname,
				LabelSelector: metaSelector(SelectorLabels(g)),
			},
		}},
	}}
}

// templateHash hashes the parts of a pod that a change must roll out: the
// spec and the annotations other than the hash itself. Labels are left out
// because the role label moves at run time.
func templateHash(pod *corev1.Pod) string {
	ann := map[string]string{}
	for k, v := range pod.Annotations {
		if k != AnnotationTemplateHash {
			ann[k] = v
		}
	}
	data, _ := json.Marshal(struct {
		Spec        corev1.PodSpec
		Annotations map[string]string
	}{pod.Spec, ann})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:8])
}

func setAnnotation(ann map[string]string, k, v string) map[string]string {
	if ann == nil {
		ann = map[string]string{}
	}
	ann[k] = v
	return ann
}
