package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MemberRole is a triad member's configured role.
// +kubebuilder:validation:Enum=Primary;Secondary;Tertiary
type MemberRole string

// Triad member roles.
const (
	// RolePrimary serves whenever it can reach at least one peer.
	RolePrimary MemberRole = "Primary"
	// RoleSecondary serves while the primary is down, and hands the role back
	// on failback.
	RoleSecondary MemberRole = "Secondary"
	// RoleTertiary only completes the quorum: it votes and watches, and never
	// serves, even when both other members are down.
	RoleTertiary MemberRole = "Tertiary"
)

// FailbackPolicy says whether the primary takes the active role back.
// +kubebuilder:validation:Enum=Automatic;Manual
type FailbackPolicy string

// Failback policies.
const (
	// FailbackAutomatic: the primary takes the role back once it has been
	// healthy and in contact for failbackDelaySeconds.
	FailbackAutomatic FailbackPolicy = "Automatic"
	// FailbackManual: the secondary keeps serving until roles are changed.
	FailbackManual FailbackPolicy = "Manual"
)

// DissolvePolicy decides what survives when a group is deleted.
// +kubebuilder:validation:Enum=Retain;Delete;KeepOnActive;MoveTo
type DissolvePolicy string

// Dissolve policies.
const (
	// DissolveRetain keeps the licence Secret and the synced state
	// (ConfigMap and Secret <triad>-state), so a new triad of the same name
	// starts where this one stopped.
	DissolveRetain DissolvePolicy = "Retain"
	// DissolveDelete deletes the synced state with the group, and the
	// licence Secrets that opt in with the label
	// licenseha.io/delete-with-group: "true".
	DissolveDelete DissolvePolicy = "Delete"
	// DissolveKeepOnActive keeps what Retain keeps and, of the members'
	// own data, only the active member's: its volume claim (with
	// spec.storage) is kept for a group of the same name, the other
	// members' claims go with the group. For a pair, the licence Secret of
	// the side that does not serve is deleted when it opts in with
	// licenseha.io/delete-with-group: "true".
	DissolveKeepOnActive DissolvePolicy = "KeepOnActive"
	// DissolveMoveTo is KeepOnActive for the member named by
	// spec.dissolveMoveTo instead of the active one.
	DissolveMoveTo DissolvePolicy = "MoveTo"
)

// TriadPhase summarises a triad's state.
// +kubebuilder:validation:Enum=Forming;Active;Degraded;NoQuorum;Failed
type TriadPhase string

// Triad phases.
const (
	// TriadForming: members are starting or preconditions are not met yet.
	TriadForming TriadPhase = "Forming"
	// TriadActive: one member serves and all three are in contact.
	TriadActive TriadPhase = "Active"
	// TriadDegraded: one member serves, but a member is down or out of sync
	// or the triad is not as specified (see Ready); or two members are in
	// contact and none serves.
	TriadDegraded TriadPhase = "Degraded"
	// TriadNoQuorum: fewer than two members are in contact; nobody serves.
	TriadNoQuorum TriadPhase = "NoQuorum"
	// TriadFailed: a precondition cannot be met without a change to the
	// spec or its referenced objects (see conditions).
	TriadFailed TriadPhase = "Failed"
)

// MemberState is what a member is doing right now.
// +kubebuilder:validation:Enum=Pending;Active;Standby;Witness;Fenced;Unhealthy
type MemberState string

// Member states.
const (
	MemberPending   MemberState = "Pending"
	MemberActive    MemberState = "Active"
	MemberStandby   MemberState = "Standby"
	MemberWitness   MemberState = "Witness"
	MemberFenced    MemberState = "Fenced"
	MemberUnhealthy MemberState = "Unhealthy"
)

// TriadMember is one of the three members of a triad.
type TriadMember struct {
	// name of the member; its pod is <triad>-<member>. A DNS label. Renaming
	// a member replaces it: the new member starts from the synced state and
	// needs no relicensing.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=53
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// role of the member: Primary, Secondary or Tertiary, each exactly once.
	// Changing roles performs a planned switchover.
	// +required
	Role MemberRole `json:"role"`

	Placement `json:",inline"`
}

// FailoverSpec tunes how fast a triad detects a failed member and takes over.
// +kubebuilder:validation:XValidation:rule="!has(self.heartbeatIntervalMilliseconds) || !has(self.peerTimeoutSeconds) || self.heartbeatIntervalMilliseconds * 2 <= self.peerTimeoutSeconds * 1000",message="spec.failover.heartbeatIntervalMilliseconds must be at most half of peerTimeoutSeconds, so a single lost heartbeat does not count a peer as unreachable"
type FailoverSpec struct {
	// peerTimeoutSeconds: a member that has not heard a peer's heartbeat for
	// this long counts it as unreachable. An active member that cannot reach
	// either peer for this long stops serving; a crashed active is replaced
	// after about this long.
	// +optional
	// +kubebuilder:default=2
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	PeerTimeoutSeconds int32 `json:"peerTimeoutSeconds,omitempty"`

	// heartbeatIntervalMilliseconds is how often members send each other
	// heartbeats.
	// +optional
	// +kubebuilder:default=250
	// +kubebuilder:validation:Minimum=50
	// +kubebuilder:validation:Maximum=60000
	HeartbeatIntervalMilliseconds int32 `json:"heartbeatIntervalMilliseconds,omitempty"`

	// failback: Automatic returns the active role to the primary once it has
	// been healthy for failbackDelaySeconds; Manual leaves the secondary
	// active until roles are changed.
	// +optional
	// +kubebuilder:default=Automatic
	Failback FailbackPolicy `json:"failback,omitempty"`

	// failbackDelaySeconds: how long the primary must be healthy and in
	// contact before it takes the active role back. 0 fails back at once.
	// +optional
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	FailbackDelaySeconds int32 `json:"failbackDelaySeconds,omitempty"`
}

// TriadSyncSpec tunes state sync between triad members.
type TriadSyncSpec struct {
	// intervalSeconds: the active member publishes its state at least this
	// often (and soon after every change).
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=86400
	IntervalSeconds int32 `json:"intervalSeconds,omitempty"`
	// paths adds folders of the server's data (relative to
	// server.dataPath) to the sync, with filters: the active member
	// publishes what changed in them every intervalSeconds and once more
	// after its server stopped on a handover; the other members apply it,
	// and a member taking over applies the newest before its server
	// starts serving. For vendor servers that keep state in files.
	// +optional
	// +listType=map
	// +listMapKey=path
	// +kubebuilder:validation:MaxItems=32
	Paths []SyncPath `json:"paths,omitempty"`
	// strict also deletes on the other members what the active no longer
	// has under paths.
	// +optional
	// +kubebuilder:default=false
	Strict bool `json:"strict,omitempty"`
	// preserveTimestamps keeps the active's modification times on synced
	// files.
	// +optional
	// +kubebuilder:default=true
	PreserveTimestamps *bool `json:"preserveTimestamps,omitempty"`
}

// LicenseTriadSpec is the desired state of a LicenseTriad.
// +kubebuilder:validation:XValidation:rule="has(self.storage) == has(oldSelf.storage)",message="spec.storage cannot be added or removed after creation: the members' data would be lost"
// +kubebuilder:validation:XValidation:rule="!has(self.dissolvePolicy) || self.dissolvePolicy != 'MoveTo' || (has(self.dissolveMoveTo) && self.members.exists(m, m.name == self.dissolveMoveTo))",message="spec.dissolveMoveTo must name one of spec.members[].name when spec.dissolvePolicy is MoveTo"
// +kubebuilder:validation:XValidation:rule="!has(self.dissolveMoveTo) || (has(self.dissolvePolicy) && self.dissolvePolicy == 'MoveTo')",message="spec.dissolveMoveTo may only be set when spec.dissolvePolicy is MoveTo (allowed policies: Retain, Delete, KeepOnActive, MoveTo)"
type LicenseTriadSpec struct {
	GroupSpec `json:",inline"`

	// licenseSecretRef names the Secret holding the triad's licence files,
	// one per key ending in .lic. All members share them: a triad needs one
	// Enterprise licence bound to <namespace>/<name> of the triad.
	// +required
	LicenseSecretRef LocalObjectReference `json:"licenseSecretRef"`

	// members lists exactly three members, one per role: Primary, Secondary
	// and Tertiary. Names are unique.
	// +required
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MinItems=3
	// +kubebuilder:validation:MaxItems=3
	// +kubebuilder:validation:XValidation:rule="self.exists_one(m, m.role == 'Primary')",message="spec.members must have exactly one member with role Primary"
	// +kubebuilder:validation:XValidation:rule="self.exists_one(m, m.role == 'Secondary')",message="spec.members must have exactly one member with role Secondary"
	// +kubebuilder:validation:XValidation:rule="self.exists_one(m, m.role == 'Tertiary')",message="spec.members must have exactly one member with role Tertiary"
	Members []TriadMember `json:"members"`

	// failover tunes failure detection, takeover and failback.
	// +optional
	// +kubebuilder:default={}
	Failover FailoverSpec `json:"failover,omitempty"`

	// sync tunes how state flows from the active member to the others.
	// +optional
	// +kubebuilder:default={}
	Sync TriadSyncSpec `json:"sync,omitempty"`

	// dissolveMoveTo names the member that keeps the triad's licences and
	// data when dissolvePolicy is MoveTo; one of spec.members[].name.
	// Allowed only with dissolvePolicy MoveTo.
	// +optional
	// +kubebuilder:validation:MaxLength=53
	DissolveMoveTo string `json:"dissolveMoveTo,omitempty"`
}

// TriadMemberStatus is the observed state of one member.
type TriadMemberStatus struct {
	// name of the member.
	Name string `json:"name"`
	// role configured for the member.
	// +optional
	Role MemberRole `json:"role,omitempty"`
	// pod running the member.
	// +optional
	Pod string `json:"pod,omitempty"`
	// podIP of the member's pod.
	// +optional
	PodIP string `json:"podIP,omitempty"`
	// state of the member: Pending, Active, Standby, Witness, Fenced or
	// Unhealthy.
	// +optional
	State MemberState `json:"state,omitempty"`
	// ready is true when the member's agent reports ready.
	// +optional
	Ready bool `json:"ready"`
	// lastHeartbeatTime is when the member was last heard from.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// settingsHash identifies the settings the member's server runs (see
	// status.settings.hash).
	// +optional
	SettingsHash string `json:"settingsHash,omitempty"`
	// version of the member's license server, as its agent reports it.
	// All members must run the same version (condition Degraded, reason
	// VersionMismatch, otherwise).
	// +optional
	Version string `json:"version,omitempty"`
}

// SyncStatus reports the state sync of a triad.
type SyncStatus struct {
	// revision of the latest published state snapshot.
	// +optional
	Revision int64 `json:"revision,omitempty"`
	// lastSyncTime is when the latest snapshot was published.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
	// synchronized is true when every running member applied revision.
	// +optional
	Synchronized bool `json:"synchronized"`
}

// LicenseTriadStatus is the observed state of a LicenseTriad.
type LicenseTriadStatus struct {
	GroupStatus `json:",inline"`
	// phase summarises the triad: Forming, Active, Degraded, NoQuorum, Failed.
	// +optional
	Phase TriadPhase `json:"phase,omitempty"`
	// activeMember is the member that serves; empty when nobody serves.
	// +optional
	ActiveMember string `json:"activeMember,omitempty"`
	// membersInQuorum counts the members up and in contact.
	// +optional
	MembersInQuorum int32 `json:"membersInQuorum"`
	// quorum is membersInQuorum out of three, e.g. "3/3", for kubectl get.
	// +optional
	Quorum string `json:"quorum,omitempty"`
	// epoch is the fencing epoch of the current active term; every takeover
	// increments it.
	// +optional
	Epoch int64 `json:"epoch,omitempty"`
	// members reports each member.
	// +optional
	// +listType=map
	// +listMapKey=name
	Members []TriadMemberStatus `json:"members,omitempty"`
	// licenses the triad holds.
	// +optional
	Licenses []LicenseStatus `json:"licenses,omitempty"`
	// lastFailoverTime is when another member last took over.
	// +optional
	LastFailoverTime *metav1.Time `json:"lastFailoverTime,omitempty"`
	// sync reports state sync between members.
	// +optional
	Sync SyncStatus `json:"sync,omitempty"`
}

// LicenseTriad runs three license-server members that behave as one server:
// exactly one member is active, the group needs two of three in contact to
// serve, the tertiary only completes the quorum, and the primary takes the
// role back after a failover.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=ltriad,categories=licenseha
// +kubebuilder:printcolumn:name="Active",type=string,JSONPath=`.status.activeMember`,description="Member that serves"
// +kubebuilder:printcolumn:name="Quorum",type=string,JSONPath=`.status.quorum`,description="Members in contact"
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 55",message="metadata.name of a LicenseTriad must be a DNS label of at most 55 characters starting with a letter, so that its Services (<triad>-members) stay valid names"
// +kubebuilder:validation:XValidation:rule="self.spec.members.all(m, size(self.metadata.name) + size(m.name) <= 62)",message="spec.members[].name is too long for this triad: <triad>-<member> must be at most 63 characters"
type LicenseTriad struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the desired state of the triad.
	// +required
	Spec LicenseTriadSpec `json:"spec"`

	// status is the observed state of the triad.
	// +optional
	Status LicenseTriadStatus `json:"status,omitempty"`
}

// LicenseTriadList is a list of LicenseTriads.
//
// +kubebuilder:object:root=true
type LicenseTriadList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []LicenseTriad `json:"items"`
}

func init() {
	SchemeBuilder.Register(&LicenseTriad{}, &LicenseTriadList{})
}
