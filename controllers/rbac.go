package controllers

// The operator's permissions, one marker per resource, with the calls that
// need each verb. controller-gen turns them into config/rbac/role.yaml (the
// ClusterRole), and hack/sync-chart.sh into the chart's ClusterRole or, with
// watchNamespaces, a Role per watched namespace. Keep them to what the code
// does: "list" and "watch" feed the informers (cached reads need no "get"),
// "get" is a direct read. Server-side apply is a patch, but creating an
// object that way also needs "create".
//
// Besides its own calls, the operator must hold every permission of the Role
// it creates for a group's agents (builder.AgentRole): Kubernetes refuses to
// let anyone grant what they do not hold. Verbs held only for that reason
// are marked "agents".

// Groups: informers (list, watch); the finalizer and the replace-member
// annotation (patch); status (patch). Setting a group as the blocking owner
// of its children needs update on its finalizers.
// +kubebuilder:rbac:groups=licenseha.io,resources=licensetriads;licensebackuppairs,verbs=list;watch;patch
// +kubebuilder:rbac:groups=licenseha.io,resources=licensetriads/status;licensebackuppairs/status,verbs=patch
// +kubebuilder:rbac:groups=licenseha.io,resources=licensetriads/finalizers;licensebackuppairs/finalizers,verbs=update

// Every name a group needs is read directly before any write, to refuse
// objects the group does not own (inspectChildren): get on each child kind.

// Pods: informer; direct read of the names (get); members are created,
// rolled and replaced (create, delete); role labels are corrected (patch).
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch;create;delete;patch

// Services: informer; server-side apply (create, patch); leftovers of a
// deleted group of the same name (list, delete).
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch;create;patch;delete

// ServiceAccounts, Roles and RoleBindings of the agents: informers (the
// group's own are found there, and an edit is put back); server-side apply
// (create, patch); leftovers (list, delete).
// +kubebuilder:rbac:groups="",resources=serviceaccounts,verbs=get;list;watch;create;patch;delete
// +kubebuilder:rbac:groups=rbac.authorization.k8s.io,resources=roles;rolebindings,verbs=get;list;watch;create;patch;delete

// Volume claims: informer; created once, adopted (patch); a replaced
// member's claim and leftovers (delete).
// +kubebuilder:rbac:groups="",resources=persistentvolumeclaims,verbs=get;list;watch;create;patch;delete

// Secrets and ConfigMaps: metadata watch of referenced ones (list, watch);
// direct reads of licences, settings, credentials and the group's own
// objects (get); the admin token, the synced state and the configuration
// (create, patch by server-side apply and on adoption or dissolve); Delete
// policy and leftovers (delete); update (agents: the synced state).
// +kubebuilder:rbac:groups="",resources=secrets;configmaps,verbs=get;list;watch;create;update;patch;delete

// Leases: informer; created once, adopted and orphaned (patch); leftovers
// (delete); get and update (agents: the election).
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;list;watch;create;update;patch;delete

// Events on the groups.
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
