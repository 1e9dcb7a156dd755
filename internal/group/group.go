// Package group holds what the operator and the member agents of a group
// agree on: object names, ports, paths inside a member pod, and the group
// configuration the operator hands to the agents.
package group

import (
	"github.com/licenseha/licenseha/pkg/server"
	lsync "github.com/licenseha/licenseha/pkg/sync"
)

// Object names derived from a group's name. They are part of the API
// contract (docs and users rely on them).
func PodName(group, member string) string { return group + "-" + member }

// ServiceName is the client-facing Service selecting the active member.
func ServiceName(group string) string { return group }

// MembersServiceName is the headless Service giving members stable DNS names.
func MembersServiceName(group string) string { return group + "-members" }

// LeaseName is the Lease that records the active member.
func LeaseName(group string) string { return group + "-active" }

// StateName names the ConfigMap and the Secret that carry synced state.
func StateName(group string) string { return group + "-state" }

// Annotations of the ConfigMap <pair>-state that carry the settings
// bundles of a disconnected pair (kubectl licenseha backup export/import);
// the operator reads them for status.bundleRevision and syncState.
const (
	// AnnotationExportedBundleRevision is the settings revision of the last
	// bundle exported from the main's cluster.
	AnnotationExportedBundleRevision = "licenseha.io/exported-bundle-revision"
	// AnnotationImportedBundleRevision is the settings revision of the last
	// bundle imported into the backup's cluster.
	AnnotationImportedBundleRevision = "licenseha.io/imported-bundle-revision"
)

// ConfigName names the ConfigMap the operator writes for the agents.
func ConfigName(group string) string { return group + "-config" }

// AdminSecretName names the Secret holding the group's generated admin token.
func AdminSecretName(group string) string { return group + "-admin" }

// AgentName names the ServiceAccount, Role and RoleBinding of the agents.
func AgentName(group string) string { return group + "-agent" }

// PVCName names a member's data volume claim.
func PVCName(group, member string) string { return group + "-" + member + "-data" }

// NetworkPolicyName names the group's NetworkPolicy (spec.networkPolicy).
func NetworkPolicyName(group string) string { return group }

// ClientTLSName names the cert-manager Certificate the operator creates for
// spec.clientAccess.tls.certManager, and the Secret it is issued into.
func ClientTLSName(group string) string { return group + "-client-tls" }

// MemberDNSName is a member's name under the headless Service: the pod's
// hostname (placement.hostname, default the member name) in the subdomain
// <group>-members.
func MemberDNSName(group, hostname string) string { return hostname + "." + MembersServiceName(group) }

// Ports and paths inside a member pod.
const (
	// AgentHTTPPort serves the agent's probes, metrics and admin requests.
	AgentHTTPPort = 5170
	// AgentPeerPort carries heartbeats between the members' agents.
	AgentPeerPort = 5171
	// ServerAdminPort is the license server's local admin endpoint
	// (bound to 127.0.0.1 inside the pod).
	ServerAdminPort = 5161

	// AgentDir is the emptyDir the init container copies the agent into.
	AgentDir = "/licenseha"
	// AgentPath is the agent binary inside a member's server container.
	AgentPath = AgentDir + "/agent"
	// ImageBinDir is where the licenseha image keeps its binaries.
	ImageBinDir = "/usr/local/bin"
	// LicenseDir is where the licence Secret is mounted.
	LicenseDir = "/etc/licenseha/licenses"
	// ConfigDir is where the group's config ConfigMap is mounted.
	ConfigDir = "/etc/licenseha/config"
	// TrustedKeysFile holds the public keys licences must be signed with.
	TrustedKeysFile = ConfigDir + "/" + TrustedKeysKey
	// AdminTokenDir is where the admin token Secret is mounted.
	AdminTokenDir = "/etc/licenseha/admin"
	// AdminTokenFile is the bearer token of the server's admin API.
	AdminTokenFile = AdminTokenDir + "/" + AdminTokenKey
	// ClientTokensDir is where the client token Secret key is mounted
	// (spec.clientAccess.tokenSecretRef).
	ClientTokensDir = "/etc/licenseha/client-tokens"
	// ClientTokensFile holds the client API tokens, one per line.
	ClientTokensFile = ClientTokensDir + "/tokens"
	// ClientTLSDir is where the client API's certificate Secret is mounted
	// (spec.clientAccess.tls).
	ClientTLSDir = "/etc/licenseha/client-tls"
	// ClientTLSCertFile and ClientTLSKeyFile are the client API's
	// certificate (with chain) and private key.
	ClientTLSCertFile = ClientTLSDir + "/" + TLSCertKey
	ClientTLSKeyFile  = ClientTLSDir + "/" + TLSKeyKey
	// TLSCertKey and TLSKeyKey are the keys of a kubernetes.io/tls Secret.
	TLSCertKey = "tls.crt"
	TLSKeyKey  = "tls.key"
	// DefaultClientTokensKey is the default key of the client token Secret.
	DefaultClientTokensKey = "tokens"

	// ConfigKey is the key of the group configuration in ConfigName.
	ConfigKey = "group.json"
	// TrustedKeysKey is the key of the trusted public keys in ConfigName.
	TrustedKeysKey = "trusted-keys.pem"
	// AdminTokenKey is the key of the admin token in AdminSecretName.
	AdminTokenKey = "token"
)

// Kinds of group.
const (
	KindTriad      = "LicenseTriad"
	KindBackupPair = "LicenseBackupPair"
)

// Config is the group configuration the operator writes as JSON under
// ConfigKey in ConfigMap ConfigName; the agents watch it, so spec changes
// (roles, timeouts) reach them without restarting a pod.
type Config struct {
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
	Generation int64  `json:"generation"`

	Members []Member `json:"members"`

	PeerTimeoutMillis       int64 `json:"peerTimeoutMillis"`
	HeartbeatIntervalMillis int64 `json:"heartbeatIntervalMillis"`
	// PriorPeerTimeoutMillis is the longest peer timeout the group ran with
	// recently (after an edit of the timing): a restarted member's quiet
	// period covers grants its former incarnation gave under it.
	PriorPeerTimeoutMillis int64  `json:"priorPeerTimeoutMillis,omitempty"`
	Failback               string `json:"failback,omitempty"`
	FailbackDelaySeconds   int64  `json:"failbackDelaySeconds"`
	SyncIntervalSeconds    int64  `json:"syncIntervalSeconds"`
	ServerPort             int32  `json:"serverPort"`

	// Settings are the license server settings of spec.settingsRef, as the
	// operator last validated them (an invalid edit keeps the last good
	// ones); nil when the group has no settingsRef, and then the members
	// keep whatever settings their servers hold. The member that owns the
	// settings (a triad's active member, a pair's main) applies them to its
	// server whenever its server's settings differ from them; the others
	// follow through the synced state.
	Settings *server.Settings `json:"settings,omitempty"`
	// SettingsHash is server.SettingsHash of Settings.
	SettingsHash string `json:"settingsHash,omitempty"`

	// File sync of spec.sync.paths (both kinds): strict deletes, kept
	// modification times, the folders.
	SyncStrict         bool       `json:"syncStrict,omitempty"`
	PreserveTimestamps bool       `json:"preserveTimestamps,omitempty"`
	SyncPaths          []SyncPath `json:"syncPaths,omitempty"`

	// Backup pairs only.
	Mode  string `json:"mode,omitempty"`
	Roles string `json:"roles,omitempty"`
	// PreferredSide (ActivePassive pairs) is the side that serves whenever
	// it can (roles Fixed), or that the role moves to when it changes
	// (Symmetric); empty means main.
	PreferredSide   string           `json:"preferredSide,omitempty"`
	LicenseMappings []LicenseMapping `json:"licenseMappings,omitempty"`
}

// Member is one member of a group as the agents see it.
type Member struct {
	Name string `json:"name"`
	// Role is Primary, Secondary or Tertiary (triad), main or backup (pair).
	Role string `json:"role"`
	Pod  string `json:"pod"`
	// Address is the pod IP, empty until the pod has one.
	Address string `json:"address,omitempty"`
}

// LicenseMapping maps a main licence to a backup licence.
type LicenseMapping struct {
	Main   string `json:"main"`
	Backup string `json:"backup"`
}

// SyncPath is an extra folder of a group's data to sync, as the sync
// package walks it.
type SyncPath = lsync.Path

// Member returns the named member, or false.
func (c *Config) Member(name string) (Member, bool) {
	for _, m := range c.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}
