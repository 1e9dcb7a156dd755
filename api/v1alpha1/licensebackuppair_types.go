package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// PairMode decides whether both servers of a pair serve.
// +kubebuilder:validation:Enum=ActiveActive;ActivePassive
type PairMode string

// Pair modes.
const (
	// ActiveActive: main and backup both serve their own licences; a client
	// whose server fails moves to the other, using the mapped licence, and
	// returns when its own server is back.
	ActiveActive PairMode = "ActiveActive"
	// ActivePassive: the backup serves only while the main is down.
	ActivePassive PairMode = "ActivePassive"
)

// PairRoles decides which server is primary in ActivePassive mode.
// +kubebuilder:validation:Enum=Fixed;Symmetric
type PairRoles string

// Pair roles.
const (
	// RolesFixed: the main is always primary and takes the role back as soon
	// as it returns ("main only" / "backup only").
	RolesFixed PairRoles = "Fixed"
	// RolesSymmetric: the first server up is primary; the other stays
	// secondary until the primary fails. The Lease decides, so two servers
	// started at the same instant never both serve.
	RolesSymmetric PairRoles = "Symmetric"
)

// PairPhase summarises a pair's state.
// +kubebuilder:validation:Enum=Forming;Active;Degraded;Failed
type PairPhase string

// Pair phases.
const (
	PairForming  PairPhase = "Forming"
	PairActive   PairPhase = "Active"
	PairDegraded PairPhase = "Degraded"
	PairFailed   PairPhase = "Failed"
)

// SyncState is one of the four states of a backup pair.
// +kubebuilder:validation:Enum=ConnectedSynchronized;ConnectedNotSynchronized;DisconnectedSynchronized;DisconnectedNotSynchronized
type SyncState string

// Pair sync states.
const (
	ConnectedSynchronized       SyncState = "ConnectedSynchronized"
	ConnectedNotSynchronized    SyncState = "ConnectedNotSynchronized"
	DisconnectedSynchronized    SyncState = "DisconnectedSynchronized"
	DisconnectedNotSynchronized SyncState = "DisconnectedNotSynchronized"
)

// PairSide names a server of a pair.
// +kubebuilder:validation:Enum=main;backup
type PairSide string

// Pair sides.
const (
	SideMain   PairSide = "main"
	SideBackup PairSide = "backup"
)

// PairServer is the main or the backup server of a pair.
type PairServer struct {
	// licenseSecretRef names the Secret with this server's own licence
	// files, one per key ending in .lic, bound to <namespace>/<name> of the
	// pair.
	// +required
	LicenseSecretRef LocalObjectReference `json:"licenseSecretRef"`

	// stopped stops this server on purpose: the operator runs no pod for
	// it until stopped is false again. A serving side hands its role over
	// first (ActivePassive), and a stopped main syncs to the backup once
	// more before it ends. status shows the side as stopped.
	// +optional
	Stopped bool `json:"stopped,omitempty"`

	Placement `json:",inline"`
}

// LicenseMapping pairs a main licence with the backup licence that covers
// its clients during a failover. The two may have different printer counts:
// a client is limited by the count of the server that serves it.
type LicenseMapping struct {
	// main is the id of a licence on the main server.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Main string `json:"main"`
	// backup is the id of a licence on the backup server.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Backup string `json:"backup"`
}

// SyncPath adds a folder of the server's data to the settings sync.
type SyncPath struct {
	// path is relative to server.dataPath; it may not be absolute or
	// contain "..".
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="spec.sync.paths[].path must be relative to server.dataPath, not absolute"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.](/|$)')",message="spec.sync.paths[].path may not contain '..'"
	Path string `json:"path"`
	// include lists file name patterns (shell globs) to sync; all files when
	// empty.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	Include []string `json:"include,omitempty"`
	// exclude lists file name patterns (shell globs) never to sync; they win
	// over include.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=256
	Exclude []string `json:"exclude,omitempty"`
}

// PairSyncSpec tunes settings sync from the main to the backup.
type PairSyncSpec struct {
	// intervalSeconds between sync cycles while the servers are connected.
	// Each cycle sends only what changed since the last one; the first sends
	// everything. The main also syncs once more when it is stopped on purpose.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	IntervalSeconds int32 `json:"intervalSeconds,omitempty"`
	// strict also deletes on the backup what the main no longer has.
	// +optional
	// +kubebuilder:default=false
	Strict bool `json:"strict,omitempty"`
	// preserveTimestamps keeps the main's modification times on synced files.
	// +optional
	// +kubebuilder:default=true
	PreserveTimestamps *bool `json:"preserveTimestamps,omitempty"`
	// paths adds folders of the server's data to the sync, with filters.
	// +optional
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MaxItems=32
	Paths []SyncPath `json:"paths,omitempty"`
}

// PairFailoverSpec tunes failure detection between main and backup.
type PairFailoverSpec struct {
	// peerTimeoutSeconds: a server that has not heard from its peer for this
	// long counts it as down (and, in ActivePassive, the backup takes over:
	// about peerTimeoutSeconds plus 10% after the main stops).
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	PeerTimeoutSeconds int32 `json:"peerTimeoutSeconds,omitempty"`
}

// PairDisconnectedSpec makes a pair disconnected: its main and backup run
// in two clusters (or sites) that cannot reach each other, and each
// cluster holds the same pair with its own localSide.
type PairDisconnectedSpec struct {
	// localSide is the side that runs in this cluster, main or backup. The
	// operator runs a pod for this side only; the other side runs in the
	// other cluster, where the same pair names the other localSide.
	// Immutable.
	// +required
	// +kubebuilder:validation:XValidation:rule="self == oldSelf",message="spec.disconnected.localSide is immutable: it says which side runs in this cluster"
	LocalSide PairSide `json:"localSide"`
}

// RemoteSide is the side of a disconnected pair that runs in the other
// cluster; empty for a pair whose sides both run in this one.
func (s *LicenseBackupPairSpec) RemoteSide() PairSide {
	if s.Disconnected == nil {
		return ""
	}
	if s.Disconnected.LocalSide == SideBackup {
		return SideMain
	}
	return SideBackup
}

// LicenseBackupPairSpec is the desired state of a LicenseBackupPair.
// +kubebuilder:validation:XValidation:rule="!has(self.disconnected) || self.mode == 'ActiveActive'",message="spec.disconnected requires spec.mode ActiveActive: the two sides cannot elect a serving side across clusters, so each serves on its own"
// +kubebuilder:validation:XValidation:rule="!has(self.roles) || self.mode == 'ActivePassive'",message="spec.roles may only be set when spec.mode is ActivePassive"
// +kubebuilder:validation:XValidation:rule="!has(self.preferredSide) || self.mode == 'ActivePassive'",message="spec.preferredSide may only be set when spec.mode is ActivePassive"
// +kubebuilder:validation:XValidation:rule="self.mode == oldSelf.mode",message="spec.mode is immutable: switching between ActiveActive and ActivePassive changes which server owns clients; create a new pair instead"
// +kubebuilder:validation:XValidation:rule="has(self.storage) == has(oldSelf.storage)",message="spec.storage cannot be added or removed after creation: the servers' data would be lost"
// +kubebuilder:validation:XValidation:rule="!has(self.dissolvePolicy) || self.dissolvePolicy != 'MoveTo' || has(self.dissolveMoveTo)",message="spec.dissolveMoveTo must be main or backup when spec.dissolvePolicy is MoveTo"
// +kubebuilder:validation:XValidation:rule="!has(self.dissolveMoveTo) || (has(self.dissolvePolicy) && self.dissolvePolicy == 'MoveTo')",message="spec.dissolveMoveTo may only be set when spec.dissolvePolicy is MoveTo (allowed policies: Retain, Delete, KeepOnActive, MoveTo)"
type LicenseBackupPairSpec struct {
	GroupSpec `json:",inline"`

	// mode: ActiveActive (both serve their own licences) or ActivePassive
	// (the backup serves only while the main is down). Immutable.
	// +optional
	// +kubebuilder:default=ActiveActive
	Mode PairMode `json:"mode,omitempty"`

	// roles (ActivePassive only): Fixed makes the main primary and lets it
	// take the role back when it returns; Symmetric makes the first server up
	// primary. When unset in ActivePassive mode, Fixed applies.
	// +optional
	Roles PairRoles `json:"roles,omitempty"`

	// preferredSide (ActivePassive only, default main): the server that
	// serves whenever it can with roles Fixed, or that the role moves to
	// when this field changes with Symmetric. Changing it is a planned
	// switchover: the serving side stops serving and hands over at once
	// (kubectl licenseha switchover PAIR --to backup).
	// +optional
	PreferredSide PairSide `json:"preferredSide,omitempty"`

	// main is the main server.
	// +required
	Main PairServer `json:"main"`

	// backup is the backup server.
	// +required
	Backup PairServer `json:"backup"`

	// disconnected, when set, says that the main and the backup run in two
	// clusters that cannot reach each other and which side runs in this
	// one (localSide). The operator runs only the local side's pod; the
	// other side's spec is still required (its licence Secret verifies the
	// licence mappings and the edition) but no pod runs for it here. The
	// local side serves its own licences and, through the mappings, the
	// other side's mapped licences for clients pointed at it. Settings
	// travel from the main's cluster to the backup's as signed bundles
	// (kubectl licenseha backup export / import); spec.sync.paths does not
	// travel. Requires mode ActiveActive.
	// +optional
	Disconnected *PairDisconnectedSpec `json:"disconnected,omitempty"`

	// licenseMappings maps main licences to backup licences. Failover covers
	// mapped licences only; each licence appears at most once on each side.
	// +optional
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:XValidation:rule="self.all(m, self.exists_one(n, n.main == m.main))",message="spec.licenseMappings: each main licence may be mapped only once"
	// +kubebuilder:validation:XValidation:rule="self.all(m, self.exists_one(n, n.backup == m.backup))",message="spec.licenseMappings: each backup licence may be mapped only once"
	LicenseMappings []LicenseMapping `json:"licenseMappings,omitempty"`

	// sync tunes settings sync from the main to the backup.
	// +optional
	// +kubebuilder:default={}
	Sync PairSyncSpec `json:"sync,omitempty"`

	// failover tunes failure detection between the servers.
	// +optional
	// +kubebuilder:default={}
	Failover PairFailoverSpec `json:"failover,omitempty"`

	// dissolveMoveTo names the side, main or backup, that keeps the pair's
	// licences and data when dissolvePolicy is MoveTo. Allowed only with
	// dissolvePolicy MoveTo.
	// +optional
	DissolveMoveTo PairSide `json:"dissolveMoveTo,omitempty"`
}

// PairServerStatus is the observed state of one server of a pair.
type PairServerStatus struct {
	// pod running the server; empty while the server is stopped.
	// +optional
	Pod string `json:"pod,omitempty"`
	// stopped is true while the server is stopped on purpose
	// (spec.<side>.stopped).
	// +optional
	Stopped bool `json:"stopped,omitempty"`
	// remote is true for the side of a disconnected pair that runs in the
	// other cluster (spec.disconnected): this cluster runs no pod for it
	// and knows nothing of its state.
	// +optional
	Remote bool `json:"remote,omitempty"`
	// podIP of the server's pod.
	// +optional
	PodIP string `json:"podIP,omitempty"`
	// ready is true when the server's agent reports ready.
	// +optional
	Ready bool `json:"ready"`
	// serving is true when the server accepts checkouts.
	// +optional
	Serving bool `json:"serving"`
	// version of the license server. Main and backup must run the same
	// version (condition Degraded, reason VersionMismatch, while they
	// differ); upgrade the backup first, then the main.
	// +optional
	Version string `json:"version,omitempty"`
	// licenses the server holds.
	// +optional
	Licenses []LicenseStatus `json:"licenses,omitempty"`
	// settingsHash identifies the settings the server runs (see
	// status.settings.hash).
	// +optional
	SettingsHash string `json:"settingsHash,omitempty"`
}

// LicenseBackupPairStatus is the observed state of a LicenseBackupPair.
type LicenseBackupPairStatus struct {
	GroupStatus `json:",inline"`
	// phase summarises the pair: Forming, Active, Degraded, Failed.
	// +optional
	Phase PairPhase `json:"phase,omitempty"`
	// connected is true when main and backup reach each other.
	// +optional
	Connected bool `json:"connected"`
	// synchronized is true when the backup holds the main's latest settings.
	// +optional
	Synchronized bool `json:"synchronized"`
	// syncState combines connected and synchronized into the pair's four
	// states.
	// +optional
	SyncState SyncState `json:"syncState,omitempty"`
	// activeServer (ActivePassive) is the server that serves: main or backup;
	// empty when neither does.
	// +optional
	ActiveServer PairSide `json:"activeServer,omitempty"`
	// main reports the main server.
	// +optional
	Main PairServerStatus `json:"main,omitempty"`
	// backup reports the backup server.
	// +optional
	Backup PairServerStatus `json:"backup,omitempty"`
	// unmappedLicenses lists licence ids that no mapping covers: their
	// clients cannot fail over.
	// +optional
	UnmappedLicenses []string `json:"unmappedLicenses,omitempty"`
	// bundleRevision (disconnected pairs) is the settings revision of the
	// last bundle exported from this cluster (localSide main) or imported
	// into it (localSide backup), from the annotations
	// licenseha.io/exported-bundle-revision and
	// licenseha.io/imported-bundle-revision of the ConfigMap <pair>-state;
	// 0 until the first export or import.
	// +optional
	BundleRevision int64 `json:"bundleRevision,omitempty"`
	// lastSyncTime is when the backup last applied the main's settings.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
}

// LicenseBackupPair runs a main and a backup license server, each with its
// own licences mapped to each other, keeps the backup's settings in sync with
// the main, and moves clients between them when one fails.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lbackup,categories=licenseha
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.activeServer`,description="Serving server (ActivePassive)"
// +kubebuilder:printcolumn:name="Sync",type=string,JSONPath=`.status.syncState`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 55",message="metadata.name of a LicenseBackupPair must be a DNS label of at most 55 characters starting with a letter, so that its Services (<pair>-backup) stay valid names"
type LicenseBackupPair struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the pair.
	// +required
	Spec LicenseBackupPairSpec `json:"spec"`

	// status is the observed state of the pair.
	// +optional
	Status LicenseBackupPairStatus `json:"status,omitempty"`
}

// LicenseBackupPairList is a list of LicenseBackupPairs.
//
// +kubebuilder:object:root=true
type LicenseBackupPairList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LicenseBackupPair `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LicenseBackupPair{}, &LicenseBackupPairList{})
}
