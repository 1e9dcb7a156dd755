package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Labels, annotations and names shared by both kinds. They are part of the
// contract: Services select on them, users and dashboards filter on them.
const (
	// LabelRole is set on every member pod to the member's current role:
	// active, standby, witness or unhealthy. The group's Service selects
	// role=active, so only the serving member receives client traffic.
	LabelRole = "licenseha.io/role"
	// LabelGroup names the LicenseTriad or LicenseBackupPair a pod belongs to.
	LabelGroup = "licenseha.io/group"
	// LabelGroupKind is "triad" or "backuppair".
	LabelGroupKind = "licenseha.io/group-kind"
	// LabelMember is the member name (triad) or side, main or backup (pair).
	LabelMember = "licenseha.io/member"

	// AnnotationReplaceMember, set on a LicenseTriad to a member name, asks the
	// operator to replace that member's pod (and volume) with a fresh one that
	// starts from the synced state. No relicensing is needed: licences are
	// bound to the group, not to a member.
	AnnotationReplaceMember = "licenseha.io/replace-member"

	// DefaultMACAddressAnnotation is the pod annotation that carries a fixed
	// MAC address to the CNI plugin when placement.macAddress is set.
	DefaultMACAddressAnnotation = "cni.projectcalico.org/hwAddr"

	// Finalizer lets the operator apply dissolvePolicy before a group goes.
	// A group gets it only once its licences verified, right before the
	// operator creates the group's first object.
	Finalizer = "licenseha.io/dissolve"

	// LabelDeleteWithGroup, set to "true" on a licence Secret, lets a group
	// with dissolvePolicy Delete delete that Secret when the group is
	// deleted. Without it the Secret is kept whatever the policy: the
	// operator deletes only what a group owns, and a licence Secret belongs
	// to whoever created it.
	LabelDeleteWithGroup = "licenseha.io/delete-with-group"

	// AnnotationDissolvePolicy is set by the operator, when a group
	// dissolves, on every object of the group it keeps (the synced state,
	// the Lease, a kept member's volume claim): the dissolvePolicy applied,
	// and the group as <kind>/<name>, e.g. "KeepOnActive LicenseTriad/plant-a".
	AnnotationDissolvePolicy = "licenseha.io/dissolve-policy"
	// AnnotationDissolveKeptOn is set with AnnotationDissolvePolicy under
	// dissolvePolicy KeepOnActive and MoveTo: the member (a pair's side)
	// that kept the licences and data.
	AnnotationDissolveKeptOn = "licenseha.io/dissolve-kept-on"
	// ReasonDissolved is the reason of the Normal event a group receives
	// when it dissolves; its message lists what was kept and what deleted.
	ReasonDissolved = "Dissolved"

	// DefaultServerPort is the license server's client port.
	DefaultServerPort = 5160
	// DefaultDataPath is the server's data folder inside the container.
	DefaultDataPath = "/var/lib/licenseha"
)

// Member role labels (values of LabelRole).
const (
	RoleLabelActive    = "active"
	RoleLabelStandby   = "standby"
	RoleLabelWitness   = "witness"
	RoleLabelUnhealthy = "unhealthy"
)

// Condition types. Every condition is a metav1.Condition whose reason is one
// of the Reason constants below; messages never contain time-varying text.
const (
	// ConditionReady is True when the group serves clients as specified.
	ConditionReady = "Ready"
	// ConditionQuorumSatisfied (triad) is True when at least two of the three
	// members are up and in contact with each other.
	ConditionQuorumSatisfied = "QuorumSatisfied"
	// ConditionSynchronized is True when every member holds the latest synced
	// state (triad) or the backup holds the main's latest settings (pair).
	ConditionSynchronized = "Synchronized"
	// ConditionLicenseValid is True when the referenced licences exist,
	// verify, and may be used by this group.
	ConditionLicenseValid = "LicenseValid"
	// ConditionDegraded is True when the group has lost redundancy (a member
	// is down, unhealthy or out of sync) or does not serve at all (reason
	// NoActiveMember). It is False only while Ready is True.
	ConditionDegraded = "Degraded"
	// ConditionConnected (pair) is True when main and backup reach each other.
	ConditionConnected = "Connected"
	// ConditionClientAccessReady is set only when spec.clientAccess is: True
	// when the client tokens and the TLS certificate it names exist and hold
	// their keys. While it is not True the operator creates and rolls no
	// member pod (they could not start), so members keep running as they are.
	ConditionClientAccessReady = "ClientAccessReady"
	// ConditionStalled is present, True, only while the phase is Failed:
	// the group cannot progress until its spec or another object changes
	// (the reason and message are those of Ready). It follows the kstatus
	// convention, so Flux and other kstatus readers report such a group as
	// failed instead of waiting for it; it is removed when the group can
	// progress again.
	ConditionStalled = "Stalled"
	// ConditionSettingsValid (only with spec.settingsRef) says whether the
	// settings document of the ConfigMap is valid. While it is False the
	// members keep the last valid settings.
	ConditionSettingsValid = "SettingsValid"
)

// Condition reasons.
const (
	ReasonForming            = "Forming"
	ReasonReconciling        = "Reconciling"
	ReasonSecretNotFound     = "SecretNotFound"
	ReasonNoLicenseFiles     = "NoLicenseFiles"
	ReasonSettingsNotFound   = "SettingsNotFound"
	ReasonSettingsAccepted   = "SettingsAccepted"
	ReasonInvalidSettings    = "InvalidSettings"
	ReasonLicensesPresent    = "LicensesPresent"
	ReasonLicenseInvalid     = "LicenseInvalid"
	ReasonEditionNotAllowed  = "EditionNotAllowed"
	ReasonWrongGroup         = "BoundToAnotherGroup"
	ReasonMemberInOtherGroup = "MemberInAnotherGroup"
	ReasonQuorum             = "Quorum"
	ReasonNoQuorum           = "NoQuorum"
	ReasonInSync             = "InSync"
	ReasonOutOfSync          = "OutOfSync"
	ReasonMembersHealthy     = "MembersHealthy"
	ReasonMemberUnavailable  = "MemberUnavailable"
	// ReasonSideStopped: a pair side is stopped on purpose
	// (spec.<side>.stopped); the pair has no redundancy until it resumes.
	ReasonSideStopped = "SideStopped"
	// ReasonDisconnected (Connected, Degraded): a disconnected pair
	// (spec.disconnected) whose other side runs in another cluster on
	// purpose; Degraded carries it while the settings bundles have not
	// caught up.
	ReasonDisconnected      = "Disconnected"
	ReasonServing           = "Serving"
	ReasonNotServing        = "NotServing"
	ReasonPeersConnected    = "PeersConnected"
	ReasonPeersDisconnected = "PeersDisconnected"
	ReasonVersionMismatch   = "VersionMismatch"
	// ReasonNoActiveMember (Degraded) says that no member serves.
	ReasonNoActiveMember = "NoActiveMember"
	// ReasonPredecessorLeftovers (Ready) says that the operator is deleting
	// the objects a deleted group of the same kind and name left behind.
	ReasonPredecessorLeftovers = "PredecessorLeftovers"
	// ReasonObjectNotOwned (Ready) says that an object with a name the group
	// needs (a Service, ConfigMap, Secret, ...) exists and is not the
	// group's: the operator changes nothing until it is gone.
	ReasonObjectNotOwned = "ObjectNotOwned"
	// ReasonNameConflict (Ready) says that another group, created earlier,
	// needs an object of the same kind and name as this group (e.g. triad
	// plant's member a-b and triad plant-a's member b both need the pod
	// plant-a-b); this group creates nothing until the conflict is gone.
	ReasonNameConflict = "NameConflict"

	// ReasonCredentialsPresent (ClientAccessReady True): the token Secret and
	// the certificate Secret exist and hold their keys.
	ReasonCredentialsPresent = "CredentialsPresent"
	// ReasonSecretKeyMissing (ClientAccessReady): a referenced Secret lacks
	// the key the members need (the token key, tls.crt or tls.key).
	ReasonSecretKeyMissing = "SecretKeyMissing"
	// ReasonNoClientTokens (ClientAccessReady): the token key holds no token.
	ReasonNoClientTokens = "NoClientTokens"
	// ReasonCertificateInvalid (ClientAccessReady): tls.crt and tls.key of
	// the certificate Secret do not form a valid key pair.
	ReasonCertificateInvalid = "CertificateInvalid"
	// ReasonCertificateNotReady (ClientAccessReady): cert-manager has not
	// issued the group's Certificate into its Secret yet.
	ReasonCertificateNotReady = "CertificateNotReady"
	// ReasonCertManagerNotInstalled (ClientAccessReady): tls.certManager is
	// set but the cluster has no certificates.cert-manager.io CRD.
	ReasonCertManagerNotInstalled = "CertManagerNotInstalled"

	// ReasonVolumeNotAllowed (Ready): spec.server.volumes mounts a
	// PersistentVolumeClaim, ConfigMap or Secret that does not exist or does
	// not carry licenseha.io/mountable=true; no member pod is written until
	// it does.
	ReasonVolumeNotAllowed = "VolumeNotAllowed"
)

// GroupSpec holds the spec fields a LicenseTriad and a LicenseBackupPair
// share, with the same meaning in both; each kind's spec embeds it inline.
// Rules that tie these fields to the kind's own (spec.storage may not be
// added or removed, dissolveMoveTo only with dissolvePolicy MoveTo) stay on
// the kind's spec.
type GroupSpec struct {
	// server describes how every member runs its license server.
	// +optional
	// +kubebuilder:default={}
	Server ServerSpec `json:"server,omitempty"`

	// settingsRef names an optional ConfigMap whose key settings.yaml (or
	// settings.json) holds the license server's settings document. When set
	// it is authoritative: the operator validates it (condition
	// SettingsValid; an invalid edit leaves the last valid settings in
	// effect), a triad's active member or a pair's main applies it and the
	// other members follow; changes made through a server's admin API (on a
	// pair's backup during a failover, say) are undone when the settings
	// are published again. Without it the servers keep the settings they
	// hold.
	// +optional
	SettingsRef *LocalObjectReference `json:"settingsRef,omitempty"`

	// service shapes the group's client-facing Services: <triad> for a
	// triad; <pair>, <pair>-main and <pair>-backup for a pair.
	// +optional
	// +kubebuilder:default={}
	Service ServiceSpec `json:"service,omitempty"`

	// clientAccess requires client tokens and/or TLS on the license
	// servers' client API. Unset: plain HTTP, open to every client.
	// +optional
	ClientAccess *ClientAccessSpec `json:"clientAccess,omitempty"`

	// networkPolicy maintains a NetworkPolicy named after the group
	// (<triad> or <pair>) restricting who reaches the member pods.
	// +optional
	NetworkPolicy *NetworkPolicySpec `json:"networkPolicy,omitempty"`

	// storage gives each member a PersistentVolumeClaim for its data folder.
	// Cannot be added or removed after creation.
	// +optional
	Storage *StorageSpec `json:"storage,omitempty"`

	// notifications are sent when a member takes over (a triad member, a
	// pair's backup, or a pair's main taking the role back), when a pair's
	// side is lost or recovers, and when the group loses service.
	// +optional
	Notifications *NotificationsSpec `json:"notifications,omitempty"`

	// dissolvePolicy decides what happens to the licence Secrets, the
	// synced state and the members' data when the group is deleted. Retain
	// keeps the licence Secrets, the synced state and the Lease. Delete
	// removes the synced state, and a licence Secret only when it carries
	// the label licenseha.io/delete-with-group: "true". KeepOnActive keeps
	// what Retain keeps for the member that serves at deletion and, with
	// spec.storage, that member's volume claim; the other members' claims
	// go with the group. In a triad that is the active member (the primary
	// when none serves); in a pair the side that serves (ActivePassive:
	// status.activeServer; ActiveActive: the main unless only the backup
	// serves; the main when neither serves), and the other side's licence
	// Secret is deleted when it opts in with that label. MoveTo does the
	// same for the member named by dissolveMoveTo. Objects the group does
	// not own are never deleted. What was kept is reported in a Dissolved
	// event and in the annotations licenseha.io/dissolve-policy and
	// licenseha.io/dissolve-kept-on of every object kept.
	// +optional
	// +kubebuilder:default=Retain
	DissolvePolicy DissolvePolicy `json:"dissolvePolicy,omitempty"`
}

// GroupStatus holds the status fields a LicenseTriad and a
// LicenseBackupPair share, with the same meaning in both; each kind's status
// embeds it inline.
type GroupStatus struct {
	// observedGeneration is the spec generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// endpoint is where clients reach the group: its Service (<triad> or
	// <pair>) in the cluster's DNS and the client port, e.g.
	// plant-a.printing.svc:5160 (a pair's <pair>-main and <pair>-backup
	// listen on the same port).
	// +optional
	Endpoint string `json:"endpoint,omitempty"`
	// clientPort is the license servers' client port (spec.server.port),
	// the port of the group's Services and of every member.
	// +optional
	ClientPort int32 `json:"clientPort,omitempty"`
	// failovers counts takeovers since the group was created: by another
	// triad member, or by a pair's backup (ActivePassive).
	// +optional
	Failovers int32 `json:"failovers"`
	// settings reports the settings of spec.settingsRef and which members
	// run them; absent without spec.settingsRef.
	// +optional
	Settings *SettingsStatus `json:"settings,omitempty"`
	// conditions: Ready, Synchronized, LicenseValid, Degraded,
	// QuorumSatisfied (triad) or Connected (pair), SettingsValid when
	// spec.settingsRef is set, and ClientAccessReady when spec.clientAccess
	// is set; Stalled while the phase is Failed.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
}

// ServerSpec describes how every member runs its license server. The
// member's agent supervises the server command as a child process, so a
// vendor image can be used unchanged.
// +kubebuilder:validation:XValidation:rule="!has(self.volumes) || !has(self.dataPath) || self.volumes.all(v, v.mountPath != self.dataPath && !v.mountPath.startsWith(self.dataPath + '/') && !self.dataPath.startsWith(v.mountPath + '/'))",message="spec.server.volumes[].mountPath may not be, contain or lie under spec.server.dataPath (the member's data folder)"
// +kubebuilder:validation:XValidation:rule="!has(self.volumes) || self.volumes.all(v, self.volumes.exists_one(w, w.mountPath == v.mountPath))",message="spec.server.volumes[].mountPath must differ between volumes (two volumes cannot be mounted at one path)"
// +kubebuilder:validation:XValidation:rule="!has(self.services) || has(self.command)",message="spec.server.services need spec.server.command: services run beside a vendor server, not the reference server"
type ServerSpec struct {
	// image is the container image of the license server. Defaults to the
	// licenseha image, which contains the reference license server.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	Image string `json:"image,omitempty"`

	// imagePullPolicy of the server container. Defaults to the operator's
	// --image-pull-policy when image is unset (the licenseha image), else to
	// IfNotPresent.
	// +optional
	// +kubebuilder:validation:Enum=Always;IfNotPresent;Never
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`

	// imagePullSecrets name Secrets of the group's namespace (type
	// kubernetes.io/dockerconfigjson) the kubelet pulls the member pods'
	// images with: the server image and the licenseha image of the agent.
	// They add to the operator's --image-pull-secrets.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	ImagePullSecrets []LocalObjectReference `json:"imagePullSecrets,omitempty"`

	// command is the server command the member's agent starts and supervises.
	// Defaults to the reference license server. Set it for vendor images.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Command []string `json:"command,omitempty"`

	// args are passed to command.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	Args []string `json:"args,omitempty"`

	// port is the client port of the license server; the Services expose it.
	// +optional
	// +kubebuilder:default=5160
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// env adds environment variables to the server container.
	// +optional
	// +listType=map
	// +listMapKey=name
	Env []corev1.EnvVar `json:"env,omitempty"`

	// resources of the server container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`

	// dataPath is the server's data folder inside the container, where it
	// keeps settings, usage statistics and its licence inventory. Immutable:
	// the members' data lives there, and moving it would start them empty.
	// +optional
	// +kubebuilder:default="/var/lib/licenseha"
	// +kubebuilder:validation:MaxLength=4096
	// +kubebuilder:validation:XValidation:rule="self.startsWith('/')",message="spec.server.dataPath must be an absolute path"
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.server.dataPath is immutable: the members' data lives there"
	DataPath string `json:"dataPath,omitempty"`

	// services are more processes the member's agent supervises beside the
	// server command, in the same container: a vendor server that ships as
	// several services (a licence manager and its helpers). Each is
	// restarted with back-off when it exits; with runWhen Active (the
	// default) it runs only while the member serves and is stopped with the
	// server when the member is fenced.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Services []ServerService `json:"services,omitempty"`

	// volumes are mounted into the server container besides the member's
	// own (a shared capture folder, vendor configuration). A
	// PersistentVolumeClaim, ConfigMap or Secret must carry the label
	// licenseha.io/mountable: "true": the server runs a command the group's
	// author chooses, so the object's owner has to agree to its use.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	Volumes []ServerVolume `json:"volumes,omitempty"`
}

// LabelMountable on a PersistentVolumeClaim, ConfigMap or Secret, with the
// value "true", allows groups of its namespace to mount it through
// spec.server.volumes.
const LabelMountable = "licenseha.io/mountable"

// RunWhen says when a supervised service runs.
// +kubebuilder:validation:Enum=Active;Always
type RunWhen string

const (
	// RunWhenActive: only while the member serves; fenced with the server.
	RunWhenActive RunWhen = "Active"
	// RunWhenAlways: for the whole life of the member pod.
	RunWhenAlways RunWhen = "Always"
)

// ServerService is one more process the agent supervises.
type ServerService struct {
	// name identifies the service in logs, metrics and status.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// command starts the service (an absolute path in the server image,
	// then its arguments).
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=4096
	Command []string `json:"command"`
	// runWhen: Active (default) runs the service only while the member
	// serves; Always for the life of the pod (e.g. a console that must not
	// hand out licences itself).
	// +optional
	// +kubebuilder:default=Active
	RunWhen RunWhen `json:"runWhen,omitempty"`
}

// ServerVolume is one more volume of the server container. Exactly one
// source is set.
// +kubebuilder:validation:XValidation:rule="[has(self.persistentVolumeClaim), has(self.configMap), has(self.secret), has(self.emptyDir)].filter(x, x).size() == 1",message="spec.server.volumes[]: set exactly one of persistentVolumeClaim, configMap, secret, emptyDir"
// +kubebuilder:validation:XValidation:rule="!['/licenseha', '/etc/licenseha', '/tmp', '/var/run/secrets'].exists(p, self.mountPath == p || self.mountPath.startsWith(p + '/') || p.startsWith(self.mountPath + '/'))",message="spec.server.volumes[].mountPath may not be, contain or lie under /licenseha, /etc/licenseha, /tmp or /var/run/secrets (the member's own mounts)"
// +kubebuilder:validation:XValidation:rule="self.mountPath.startsWith('/') && self.mountPath != '/' && !self.mountPath.matches('(^|/)[.][.]?(/|$)')",message="spec.server.volumes[].mountPath must be an absolute path other than /, without . or .. parts"
type ServerVolume struct {
	// name of the volume (the pod volume is named user-<name>).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=40
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`
	// mountPath inside the server container: absolute, outside the
	// member's own mounts and the data folder (server.dataPath).
	// +required
	// +kubebuilder:validation:MinLength=2
	// +kubebuilder:validation:MaxLength=4096
	MountPath string `json:"mountPath"`
	// readOnly mounts the volume read-only.
	// +optional
	ReadOnly bool `json:"readOnly,omitempty"`
	// persistentVolumeClaim of the group's namespace (ReadWriteMany when
	// all members must share it, as a capture folder); labelled
	// licenseha.io/mountable=true.
	// +optional
	PersistentVolumeClaim *VolumeClaimReference `json:"persistentVolumeClaim,omitempty"`
	// configMap of the group's namespace; labelled
	// licenseha.io/mountable=true.
	// +optional
	ConfigMap *LocalObjectReference `json:"configMap,omitempty"`
	// secret of the group's namespace; labelled
	// licenseha.io/mountable=true.
	// +optional
	Secret *LocalObjectReference `json:"secret,omitempty"`
	// emptyDir is a scratch folder of the member pod.
	// +optional
	EmptyDir *EmptyDirVolume `json:"emptyDir,omitempty"`
}

// VolumeClaimReference names a PersistentVolumeClaim.
type VolumeClaimReference struct {
	// claimName of the PersistentVolumeClaim.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName"`
}

// EmptyDirVolume is a scratch folder of the member pod.
type EmptyDirVolume struct {
	// sizeLimit caps its size.
	// +optional
	SizeLimit *resource.Quantity `json:"sizeLimit,omitempty"`
}

// StorageSpec gives every member a PersistentVolumeClaim for its data folder.
// When storage is absent the data folder is an emptyDir and a member's data
// comes back from the group's synced state after a restart.
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.storageClassName) || (has(self.storageClassName) && self.storageClassName == oldSelf.storageClassName)",message="spec.storage.storageClassName is immutable: existing volumes cannot move to another class"
// +kubebuilder:validation:XValidation:rule="quantity(string(self.size)).compareTo(quantity(string(oldSelf.size))) >= 0",message="spec.storage.size may grow but never shrink: volumes cannot be made smaller"
type StorageSpec struct {
	// size of each member's volume. It may grow (where the storage class
	// allows expansion) but never shrink.
	// +optional
	// +kubebuilder:default="1Gi"
	Size *resource.Quantity `json:"size,omitempty"`

	// storageClassName of the members' volumes; the cluster default when
	// empty. Immutable.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	StorageClassName *string `json:"storageClassName,omitempty"`
}

// ServiceSpec shapes the Services that expose the group to clients.
type ServiceSpec struct {
	// type of the client-facing Services.
	// +optional
	// +kubebuilder:default=ClusterIP
	Type ServiceType `json:"type,omitempty"`

	// annotations added to the client-facing Services (load balancer
	// settings, external DNS names, ...).
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ServiceType is the type of a client-facing Service.
// +kubebuilder:validation:Enum=ClusterIP;NodePort;LoadBalancer
type ServiceType string

// Service types.
const (
	ServiceTypeClusterIP    ServiceType = "ClusterIP"
	ServiceTypeNodePort     ServiceType = "NodePort"
	ServiceTypeLoadBalancer ServiceType = "LoadBalancer"
)

// Placement decides where a member runs and how it looks to a license server
// that checks its host identity.
type Placement struct {
	// nodeSelector constrains the member to nodes with these labels.
	// +optional
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`

	// affinity rules of the member's pod.
	// +optional
	Affinity *corev1.Affinity `json:"affinity,omitempty"`

	// tolerations of the member's pod.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	Tolerations []corev1.Toleration `json:"tolerations,omitempty"`

	// hostname is the stable hostname inside the member's pod. Defaults to
	// the member's name, so it survives rescheduling.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Hostname string `json:"hostname,omitempty"`

	// macAddress is a fixed MAC address for the member's network interface,
	// for vendor servers that bind licences to it. It is handed to the CNI
	// plugin through the annotation named by macAddressAnnotation.
	// +optional
	// +kubebuilder:validation:Pattern=`^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$`
	MACAddress string `json:"macAddress,omitempty"`

	// macAddressAnnotation is the pod annotation that carries macAddress to
	// the CNI plugin. Defaults to cni.projectcalico.org/hwAddr.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	MACAddressAnnotation string `json:"macAddressAnnotation,omitempty"`
}

// ClientAccessSpec protects the license servers' client API (the port
// spec.server.port behind the group's Services). Both parts are optional and
// independent; without clientAccess the API is plain HTTP and open to every
// client that reaches the port. The members' pods mount the Secrets and the
// reference license server is started with --client-token-file,
// --tls-cert-file and --tls-key-file; it re-reads them when the Secrets
// change, so rotation needs no restart. A vendor server (spec.server.command)
// finds the files under /etc/licenseha/client-tokens and
// /etc/licenseha/client-tls and must be configured to use them.
// +kubebuilder:validation:XValidation:rule="has(self.tokenSecretRef) || has(self.tls)",message="spec.clientAccess needs tokenSecretRef, tls or both"
type ClientAccessSpec struct {
	// tokenSecretRef names the Secret key holding the client tokens, one per
	// line (empty lines and lines starting with # are skipped). Every client
	// request must then carry "Authorization: Bearer <token>" with one of
	// them, or is answered 401; GET /healthz and GET /readyz stay open for
	// load balancers' health checks.
	// +optional
	TokenSecretRef *TokenSecretReference `json:"tokenSecretRef,omitempty"`

	// tls serves the client API over HTTPS only, with a certificate from a
	// Secret or issued by cert-manager.
	// +optional
	TLS *ClientTLSSpec `json:"tls,omitempty"`
}

// TokenSecretReference names a key of a Secret in the group's namespace.
type TokenSecretReference struct {
	// name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// key of the Secret that holds the tokens. Defaults to "tokens".
	// +optional
	// +kubebuilder:default=tokens
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// ClientTLSSpec says where the client API's certificate comes from: exactly
// one of secretRef and certManager. The certificate must cover the names
// clients connect to: the group's Services (<group>, for a pair also
// <pair>-main and <pair>-backup) and, for clients that list the members,
// each member's name <hostname>.<group>-members, all in the forms <name>,
// <name>.<namespace>, <name>.<namespace>.svc and
// <name>.<namespace>.svc.cluster.local.
// +kubebuilder:validation:XValidation:rule="has(self.secretRef) != has(self.certManager)",message="spec.clientAccess.tls needs exactly one of secretRef and certManager"
type ClientTLSSpec struct {
	// secretRef names a Secret of type kubernetes.io/tls (keys tls.crt, with
	// the chain, and tls.key) that you manage.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`

	// certManager makes the operator create a cert-manager Certificate
	// <group>-client-tls for every name above; cert-manager issues it into the
	// Secret <group>-client-tls and renews it. Needs cert-manager installed.
	// +optional
	CertManager *CertManagerSpec `json:"certManager,omitempty"`
}

// CertManagerSpec configures the Certificate the operator creates.
type CertManagerSpec struct {
	// issuerRef is the cert-manager Issuer or ClusterIssuer that signs the
	// certificate.
	// +required
	IssuerRef CertManagerIssuerReference `json:"issuerRef"`

	// dnsNames adds names to the certificate besides the Service and member
	// names, e.g. the DNS name of a LoadBalancer Service.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	DNSNames []string `json:"dnsNames,omitempty"`
}

// CertManagerIssuerReference names a cert-manager issuer.
type CertManagerIssuerReference struct {
	// name of the issuer.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`

	// kind of the issuer: Issuer (in the group's namespace), ClusterIssuer,
	// or the kind of an external issuer.
	// +optional
	// +kubebuilder:default=Issuer
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind,omitempty"`

	// group of the issuer's API; cert-manager.io unless an external issuer.
	// +optional
	// +kubebuilder:default=cert-manager.io
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`
}

// NetworkPolicySpec makes the operator maintain a NetworkPolicy named after
// the group that admits to the member pods only what the group needs:
// clients on the client port, the members to each other on the agent ports,
// and metrics scrapers on the agent's HTTP port. It restricts ingress only;
// the kubelet's probes are always admitted. Your cluster's network plugin
// must enforce NetworkPolicies for it to have an effect.
type NetworkPolicySpec struct {
	// enabled creates the NetworkPolicy; false or absent deletes it.
	// +optional
	Enabled bool `json:"enabled,omitempty"`

	// clientNamespaceSelector admits clients from the namespaces it selects
	// (together with clientPodSelector: the selected pods of those
	// namespaces). When no client selector and no clientCIDRs are set, the
	// client port is open to every source.
	// +optional
	ClientNamespaceSelector *metav1.LabelSelector `json:"clientNamespaceSelector,omitempty"`

	// clientPodSelector admits clients from the pods it selects, in the
	// group's namespace unless clientNamespaceSelector is set.
	// +optional
	ClientPodSelector *metav1.LabelSelector `json:"clientPodSelector,omitempty"`

	// clientCIDRs admits clients outside the cluster (printer hosts, licensed
	// tools) by address, e.g. 10.20.0.0/16. With a NodePort or LoadBalancer
	// Service the address the pod sees depends on externalTrafficPolicy:
	// Cluster replaces it with a node's.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=43
	// +kubebuilder:validation:XValidation:rule="self.all(c, c.matches('^[0-9a-fA-F:.]+/[0-9]{1,3}$'))",message="spec.networkPolicy.clientCIDRs must be CIDRs such as 10.20.0.0/16"
	ClientCIDRs []string `json:"clientCIDRs,omitempty"`

	// metricsNamespaceSelector admits Prometheus from the namespaces it
	// selects to the agents' metrics (agent HTTP port). Defaults to the
	// operator's namespace.
	// +optional
	MetricsNamespaceSelector *metav1.LabelSelector `json:"metricsNamespaceSelector,omitempty"`
}

// LocalObjectReference names an object in the group's namespace.
type LocalObjectReference struct {
	// name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// NotificationsSpec sends a message when a member takes over, a pair's
// server is lost or back, or the group loses service.
type NotificationsSpec struct {
	// webhook receives a JSON document for every takeover, lost or
	// recovered server and loss of service.
	// +optional
	Webhook *WebhookNotification `json:"webhook,omitempty"`

	// email sends a mail for every takeover, lost or recovered server and
	// loss of service.
	// +optional
	Email *EmailNotification `json:"email,omitempty"`
}

// WebhookNotification posts a JSON event to a URL.
type WebhookNotification struct {
	// url receives an HTTP POST with a JSON body.
	// +required
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.startsWith('https://') || self.startsWith('http://')",message="spec.notifications.webhook.url must be an http:// or https:// URL"
	URL string `json:"url"`

	// secretRef names a Secret whose key "token" is sent as a bearer token.
	// +optional
	SecretRef *LocalObjectReference `json:"secretRef,omitempty"`
}

// EmailTLS says how the connection to an SMTP relay is secured.
// +kubebuilder:validation:Enum=StartTLS;Implicit;None
type EmailTLS string

const (
	// EmailStartTLS connects in plain text and upgrades the connection with
	// STARTTLS before anything else is sent (submission, port 587); sending
	// is refused when the relay does not offer STARTTLS.
	EmailStartTLS EmailTLS = "StartTLS"
	// EmailImplicitTLS speaks TLS from the first byte (SMTPS, port 465).
	EmailImplicitTLS EmailTLS = "Implicit"
	// EmailNoTLS sends in plain text. Credentials are then sent only to a
	// relay on the local host.
	EmailNoTLS EmailTLS = "None"
)

// Annotations of the test notification (kubectl licenseha notify test).
const (
	// AnnotationNotifyTest, set on a group to a nonce (1-63 letters, digits,
	// '-', '_' or '.'), asks the operator to send a test notification
	// through every channel of spec.notifications, once per nonce.
	AnnotationNotifyTest = "licenseha.io/notify-test"
	// AnnotationNotifyTestSent is the nonce of the last test notification
	// the operator sent; the operator sets it before sending.
	AnnotationNotifyTestSent = "licenseha.io/notify-test-sent"
	// LabelNotifyTest labels the Events that report a test notification's
	// result, one per channel, with the nonce.
	LabelNotifyTest = "licenseha.io/notify-test"
	// LabelNotifyChannel labels those Events with the channel: webhook or
	// email.
	LabelNotifyChannel = "licenseha.io/notify-channel"
)

// EmailNotification sends mail through an SMTP relay.
// +kubebuilder:validation:XValidation:rule="!has(self.tls) || self.tls == 'None' || !has(self.startTLS) || self.startTLS",message="spec.notifications.email.startTLS: false (deprecated) means no TLS and contradicts spec.notifications.email.tls StartTLS or Implicit: remove startTLS, or set tls: None"
type EmailNotification struct {
	// smtpHost is the SMTP relay's host name.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SMTPHost string `json:"smtpHost"`

	// port of the SMTP relay.
	// +optional
	// +kubebuilder:default=587
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// from is the sender address.
	// +required
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:XValidation:rule="self.contains('@')",message="spec.notifications.email.from must be an e-mail address"
	From string `json:"from"`

	// to lists the recipients; at least one.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:items:MaxLength=254
	// +kubebuilder:validation:XValidation:rule="self.all(a, a.contains('@'))",message="spec.notifications.email.to must list e-mail addresses"
	To []string `json:"to"`

	// tls says how the connection to the relay is secured: StartTLS (a
	// plain connection upgraded with STARTTLS before anything else is sent,
	// usually port 587; sending is refused when the relay does not offer
	// it), Implicit (TLS from the first byte, SMTPS, usually port 465: set
	// port too) or None (plain text; credentials are then sent only to a
	// relay on the local host). When unset, startTLS decides: StartTLS
	// unless startTLS is false, which means None.
	// +optional
	TLS EmailTLS `json:"tls,omitempty"`

	// startTLS upgrades the connection with STARTTLS before authenticating.
	// Deprecated: use tls. With tls set, startTLS may only be true (its
	// default, which tls overrides) or, with tls None, false.
	// +optional
	// +kubebuilder:default=true
	StartTLS *bool `json:"startTLS,omitempty"`

	// caSecretRef names a Secret whose key "ca.crt" holds the PEM CA
	// certificates the relay's certificate must chain to, instead of the
	// system's: for a relay with a certificate from a private CA.
	// +optional
	CASecretRef *LocalObjectReference `json:"caSecretRef,omitempty"`

	// credentialsSecretRef names a Secret with keys "username" and
	// "password" for SMTP authentication.
	// +optional
	CredentialsSecretRef *LocalObjectReference `json:"credentialsSecretRef,omitempty"`
}

// SettingsStatus reports the settings of spec.settingsRef.
type SettingsStatus struct {
	// configMap named by spec.settingsRef.
	ConfigMap string `json:"configMap"`
	// hash identifies the settings in effect: the SHA-256 of their JSON, as
	// members report it. While the ConfigMap holds invalid settings (see
	// the SettingsValid condition) it is the hash of the last valid ones,
	// which the members keep; empty when no valid settings were seen yet.
	// +optional
	Hash string `json:"hash,omitempty"`
	// observedResourceVersion is the ConfigMap's resourceVersion last read.
	// +optional
	ObservedResourceVersion string `json:"observedResourceVersion,omitempty"`
	// appliedMembers lists the running members whose servers run hash.
	// +optional
	AppliedMembers []string `json:"appliedMembers,omitempty"`
	// synchronized is true when every running member's server runs hash.
	// +optional
	Synchronized bool `json:"synchronized"`
}

// LicenseStatus describes one licence a group holds.
type LicenseStatus struct {
	// id of the licence.
	ID string `json:"id"`
	// product the licence is for.
	// +optional
	Product string `json:"product,omitempty"`
	// edition of the licence, e.g. Enterprise.
	// +optional
	Edition string `json:"edition,omitempty"`
	// printers is the number of printer seats.
	// +optional
	Printers int32 `json:"printers,omitempty"`
	// expires is when the licence stops being valid.
	// +optional
	Expires *metav1.Time `json:"expires,omitempty"`
	// valid is false when the licence failed verification; message says why.
	// +optional
	Valid bool `json:"valid"`
	// message explains why an invalid licence was refused.
	// +optional
	Message string `json:"message,omitempty"`
}
