package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/internal/group"
)

// GroupStatus is what `status` reports about one group; -o json|yaml print
// it as is, so its field names are a stable interface for scripts.
type GroupStatus struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Phase     string `json:"phase"`
	// Active is the serving member (triad) or server (ActivePassive pair).
	Active string `json:"active"`
	// Ready is the status of the Ready condition.
	Ready string `json:"ready"`
	// Endpoint is where clients connect (status.endpoint) and ClientPort
	// the license servers' client port.
	Endpoint   string `json:"endpoint,omitempty"`
	ClientPort int32  `json:"clientPort,omitempty"`
	// Triads.
	Quorum    string `json:"quorum,omitempty"`
	Epoch     int64  `json:"epoch,omitempty"`
	Failovers int32  `json:"failovers"`
	// Pairs.
	Mode             string   `json:"mode,omitempty"`
	Roles            string   `json:"roles,omitempty"`
	SyncState        string   `json:"syncState,omitempty"`
	Connected        *bool    `json:"connected,omitempty"`
	UnmappedLicenses []string `json:"unmappedLicenses,omitempty"`

	Sync SyncSummary `json:"sync"`
	// Settings reports spec.settingsRef's settings and who runs them.
	Settings   *licensehav1.SettingsStatus `json:"settings,omitempty"`
	Members    []MemberSummary             `json:"members"`
	Licenses   []LicenseSummary            `json:"licenses"`
	Conditions []metav1.Condition          `json:"conditions"`
	Events     []EventSummary              `json:"events"`
}

// SyncSummary reports state sync.
type SyncSummary struct {
	Revision     int64        `json:"revision,omitempty"`
	Synchronized bool         `json:"synchronized"`
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`
}

// MemberSummary is one member of a triad or one server of a pair.
type MemberSummary struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	State  string `json:"state"`
	Ready  bool   `json:"ready"`
	Active bool   `json:"active"`
	Pod    string `json:"pod,omitempty"`
	PodIP  string `json:"podIP,omitempty"`
	// SettingsHash is the hash of the settings the member's server runs.
	SettingsHash string `json:"settingsHash,omitempty"`
	// Version is the version of the member's license server.
	Version string `json:"version,omitempty"`
	// LastHeartbeatTime is when a triad member's agent last reported.
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`
	// Node and Restarts come from the pod, for -o wide only.
	Node     string `json:"-"`
	Restarts *int32 `json:"-"`
}

// LicenseSummary is one licence; Server names the pair side holding it.
type LicenseSummary struct {
	Server   string       `json:"server,omitempty"`
	ID       string       `json:"id"`
	Product  string       `json:"product,omitempty"`
	Edition  string       `json:"edition,omitempty"`
	Printers int32        `json:"printers"`
	Expires  *metav1.Time `json:"expires,omitempty"`
	Valid    bool         `json:"valid"`
	Message  string       `json:"message,omitempty"`
}

// EventSummary is one Event about the group.
type EventSummary struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`
	Reason  string    `json:"reason"`
	Count   int32     `json:"count"`
	Message string    `json:"message"`
}

func newStatusCmd(o *Options) *cobra.Command {
	var (
		out           *outputFlags
		allNamespaces bool
		events        int
	)
	cmd := &cobra.Command{
		Use:   "status [NAME]",
		Short: "Show the members, roles, sync state, licences, conditions and recent events of groups",
		Long: `Show LicenseTriads and LicenseBackupPairs: members (triad) or servers (pair), their roles,
states, readiness and pod IPs, which one serves, quorum, sync revision, licences, conditions and the
group's recent Events. With NAME, the group of that name in the current namespace; without, every
group of the namespace (or of all namespaces with -A).

-o wide adds to the members' table the settings each runs, the last heartbeat, and the node and
restarts of each pod. -o json|yaml|name|jsonpath=...|go-template=...|custom-columns=... print the
status document (one object with NAME, otherwise a v1 List of them).`,
		Example: `  kubectl licenseha status plant-a
  kubectl licenseha status plant-a -o wide
  kubectl licenseha status -A
  kubectl licenseha status plant-a -o jsonpath='{.active}'
  kubectl licenseha status -o custom-columns=NAME:.name,PHASE:.phase,ACTIVE:.active`,
		Args:              cobra.MaximumNArgs(1),
		ValidArgsFunction: completeGroups(o, true, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			printer, err := out.printer()
			if err != nil {
				return err
			}
			format := out.format()
			if len(args) == 1 && allNamespaces {
				return fmt.Errorf("give a NAME or -A, not both")
			}
			k, err := o.kube()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var groups []GroupStatus
			if len(args) == 1 {
				g, err := k.groupStatus(ctx, args[0], events)
				if err != nil {
					return err
				}
				groups = []GroupStatus{*g}
			} else {
				ns := k.ns
				if allNamespaces {
					ns = ""
				}
				if groups, err = k.allGroupStatus(ctx, ns, events); err != nil {
					return err
				}
				if len(groups) == 0 && (format == "" || format == "wide") {
					if allNamespaces {
						fmt.Fprintln(o.ErrOut, "No licenseha groups found in any namespace.")
					} else {
						fmt.Fprintf(o.ErrOut, "No licenseha groups found in namespace %q; try -A.\n", k.ns)
					}
					return nil
				}
			}
			switch format {
			case "":
				return renderStatus(o.Out, groups, time.Now())
			case "wide":
				k.addPodDetails(ctx, groups)
				return renderStatusOpts(o.Out, groups, time.Now(), true)
			}
			obj, err := statusObject(groups, len(args) == 1)
			if err != nil {
				return err
			}
			if spec := out.customColumns(); spec != "" {
				return printCustomColumns(o.Out, spec, obj)
			}
			return printer.PrintObj(obj, o.Out)
		},
	}
	out = newOutputFlags(cmd, "", nil,
		"output format: wide, json, yaml, name, jsonpath=..., jsonpath-as-json=..., go-template=..., custom-columns=... (default: readable text)")
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "show the groups of all namespaces")
	cmd.Flags().IntVar(&events, "events", 10, "number of recent events to show per group (0: none)")
	return cmd
}

// statusObject is the status document the printers print: one group, or a
// v1 List of them. Each carries apiVersion and metadata (name, namespace)
// besides its own fields, as kubectl objects do.
func statusObject(groups []GroupStatus, single bool) (runtime.Object, error) {
	items := make([]unstructured.Unstructured, 0, len(groups))
	for i := range groups {
		g := &groups[i]
		u, err := toUnstructured(g, licensehav1.GroupVersion.String(), g.Kind, g.Namespace, g.Name)
		if err != nil {
			return nil, err
		}
		items = append(items, *u)
	}
	if single && len(items) == 1 {
		return &items[0], nil
	}
	return listOf(items), nil
}

// addPodDetails fills in the node and restarts of each member's pod (for
// -o wide); a pod that cannot be read is left blank.
func (k *kube) addPodDetails(ctx context.Context, groups []GroupStatus) {
	for gi := range groups {
		g := &groups[gi]
		for mi := range g.Members {
			m := &g.Members[mi]
			if m.Pod == "" {
				continue
			}
			var pod corev1.Pod
			if k.get(ctx, client.ObjectKey{Namespace: g.Namespace, Name: m.Pod}, &pod) != nil {
				continue
			}
			m.Node = pod.Spec.NodeName
			var restarts int32
			for _, c := range pod.Status.ContainerStatuses {
				restarts += c.RestartCount
			}
			m.Restarts = &restarts
		}
	}
}

// groupStatus finds NAME among triads and pairs of the namespace.
func (k *kube) groupStatus(ctx context.Context, name string, events int) (*GroupStatus, error) {
	found, err := k.findGroup(ctx, name)
	if err != nil {
		return nil, err
	}
	g := found.status()
	return g, k.addEvents(ctx, []*GroupStatus{g}, events)
}

// allGroupStatus lists the groups of a namespace ("" for all).
func (k *kube) allGroupStatus(ctx context.Context, ns string, events int) ([]GroupStatus, error) {
	found, err := k.listGroups(ctx, ns, groupKinds...)
	if err != nil {
		return nil, err
	}
	var gs []*GroupStatus
	for _, g := range found {
		gs = append(gs, g.status())
	}
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].Namespace != gs[j].Namespace {
			return gs[i].Namespace < gs[j].Namespace
		}
		if gs[i].Name != gs[j].Name {
			return gs[i].Name < gs[j].Name
		}
		return gs[i].Kind < gs[j].Kind
	})
	if err := k.addEvents(ctx, gs, events); err != nil {
		return nil, err
	}
	out := make([]GroupStatus, len(gs))
	for i, g := range gs {
		out[i] = *g
	}
	return out, nil
}

// addEvents attaches the most recent events (events.k8s.io/v1) whose
// regarding object is the group, listing each namespace once.
func (k *kube) addEvents(ctx context.Context, gs []*GroupStatus, limit int) error {
	if limit <= 0 {
		return nil
	}
	byNS := map[string][]*GroupStatus{}
	for _, g := range gs {
		byNS[g.Namespace] = append(byNS[g.Namespace], g)
	}
	for ns, groups := range byNS {
		var list eventsv1.EventList
		if err := k.list(ctx, &list, client.InNamespace(ns)); err != nil {
			if apierrors.IsForbidden(err) {
				continue // events are a courtesy: show the rest
			}
			return fmt.Errorf("listing events in %s: %w", ns, err)
		}
		for _, g := range groups {
			g.Events = groupEvents(list.Items, g.Kind, g.Name, limit)
		}
	}
	return nil
}

// groupEvents picks the events regarding kind/name, newest last.
func groupEvents(items []eventsv1.Event, kind, name string, limit int) []EventSummary {
	var out []EventSummary
	for _, e := range items {
		if e.Regarding.Kind != kind || e.Regarding.Name != name {
			continue
		}
		s := EventSummary{Type: e.Type, Reason: e.Reason, Message: e.Note, Count: 1}
		s.Time = e.EventTime.Time
		if e.Series != nil {
			s.Count = e.Series.Count
			s.Time = e.Series.LastObservedTime.Time
		} else if e.DeprecatedCount > 1 {
			s.Count = e.DeprecatedCount
		}
		if !e.DeprecatedLastTimestamp.IsZero() && e.DeprecatedLastTimestamp.After(s.Time) {
			s.Time = e.DeprecatedLastTimestamp.Time
		}
		if s.Time.IsZero() {
			s.Time = e.CreationTimestamp.Time
		}
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	if len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out
}

func readyStatus(conds []metav1.Condition) string {
	for _, c := range conds {
		if c.Type == licensehav1.ConditionReady {
			return string(c.Status)
		}
	}
	return "Unknown"
}

func triadStatus(t *licensehav1.LicenseTriad) *GroupStatus {
	st := &t.Status
	g := &GroupStatus{Kind: group.KindTriad, Namespace: t.Namespace, Name: t.Name, Phase: string(st.Phase),
		Active: st.ActiveMember, Ready: readyStatus(st.Conditions), Quorum: st.Quorum, Epoch: st.Epoch,
		Failovers: st.Failovers, Conditions: st.Conditions, Settings: st.Settings,
		Endpoint: st.Endpoint, ClientPort: st.ClientPort,
		Sync: SyncSummary{Revision: st.Sync.Revision, Synchronized: st.Sync.Synchronized, LastSyncTime: st.Sync.LastSyncTime}}
	if g.Quorum == "" {
		g.Quorum = fmt.Sprintf("%d/3", st.MembersInQuorum)
	}
	reported := map[string]licensehav1.TriadMemberStatus{}
	for _, m := range st.Members {
		reported[m.Name] = m
	}
	// Spec order, with the spec's (desired) role; members only in status
	// (being removed) follow.
	seen := map[string]bool{}
	for _, m := range t.Spec.Members {
		seen[m.Name] = true
		r, ok := reported[m.Name]
		ms := MemberSummary{Name: m.Name, Role: string(m.Role), State: string(r.State), Ready: r.Ready,
			Pod: r.Pod, PodIP: r.PodIP, Active: m.Name == st.ActiveMember, SettingsHash: r.SettingsHash, LastHeartbeatTime: r.LastHeartbeatTime,
			Version: r.Version}
		if !ok {
			ms.State = string(licensehav1.MemberPending)
			ms.Pod = group.PodName(t.Name, m.Name)
		}
		g.Members = append(g.Members, ms)
	}
	for _, r := range st.Members {
		if !seen[r.Name] {
			g.Members = append(g.Members, MemberSummary{Name: r.Name, Role: string(r.Role), State: string(r.State),
				Ready: r.Ready, Pod: r.Pod, PodIP: r.PodIP, Active: r.Name == st.ActiveMember,
				SettingsHash: r.SettingsHash, LastHeartbeatTime: r.LastHeartbeatTime, Version: r.Version})
		}
	}
	for _, l := range st.Licenses {
		g.Licenses = append(g.Licenses, licenseSummary("", l))
	}
	return g
}

func licenseSummary(server string, l licensehav1.LicenseStatus) LicenseSummary {
	return LicenseSummary{Server: server, ID: l.ID, Product: l.Product, Edition: l.Edition, Printers: l.Printers,
		Expires: l.Expires, Valid: l.Valid, Message: l.Message}
}

func pairStatus(p *licensehav1.LicenseBackupPair) *GroupStatus {
	st := &p.Status
	mode := p.Spec.Mode
	if mode == "" {
		mode = licensehav1.ActiveActive
	}
	roles := string(p.Spec.Roles)
	if roles == "" && mode == licensehav1.ActivePassive {
		roles = string(licensehav1.RolesFixed)
	}
	connected := st.Connected
	g := &GroupStatus{Kind: group.KindBackupPair, Namespace: p.Namespace, Name: p.Name, Phase: string(st.Phase),
		Active: string(st.ActiveServer), Ready: readyStatus(st.Conditions), Failovers: st.Failovers,
		Mode: string(mode), Roles: roles, SyncState: string(st.SyncState), Connected: &connected,
		UnmappedLicenses: st.UnmappedLicenses, Conditions: st.Conditions, Settings: st.Settings,
		Endpoint: st.Endpoint, ClientPort: st.ClientPort,
		Sync: SyncSummary{Synchronized: st.Synchronized, LastSyncTime: st.LastSyncTime}}
	if mode == licensehav1.ActiveActive {
		g.Active = ""
	}
	for _, side := range []struct {
		side licensehav1.PairSide
		s    licensehav1.PairServerStatus
	}{{licensehav1.SideMain, st.Main}, {licensehav1.SideBackup, st.Backup}} {
		state := "Standby"
		switch {
		case side.s.Remote:
			// A disconnected pair's other side, in another cluster.
			state = "Remote"
		case side.s.Serving:
			state = "Serving"
		case !side.s.Ready:
			state = "NotReady"
		}
		active := side.s.Serving
		if mode == licensehav1.ActivePassive {
			active = st.ActiveServer == side.side
		}
		pod := side.s.Pod
		if pod == "" && !side.s.Remote {
			pod = group.PodName(p.Name, string(side.side))
		}
		g.Members = append(g.Members, MemberSummary{Name: string(side.side), Role: string(side.side), State: state,
			Ready: side.s.Ready, Active: active, Pod: pod, PodIP: side.s.PodIP, SettingsHash: side.s.SettingsHash,
			Version: side.s.Version})
		for _, l := range side.s.Licenses {
			g.Licenses = append(g.Licenses, licenseSummary(string(side.side), l))
		}
	}
	return g
}

// renderStatus writes the readable form of groups.
func renderStatus(w io.Writer, groups []GroupStatus, now time.Time) error {
	return renderStatusOpts(w, groups, now, false)
}

// renderStatusOpts writes the readable form of groups; wide adds columns.
func renderStatusOpts(w io.Writer, groups []GroupStatus, now time.Time, wide bool) error {
	for i := range groups {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := renderGroup(w, &groups[i], now, wide); err != nil {
			return err
		}
	}
	return nil
}

func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return duration.HumanDuration(now.Sub(t))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func renderGroup(w io.Writer, g *GroupStatus, now time.Time, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "%s %s/%s\n", g.Kind, g.Namespace, g.Name)
	fmt.Fprintf(tw, "  Phase:\t%s\n", orDash(g.Phase))
	fmt.Fprintf(tw, "  Ready:\t%s\n", g.Ready)
	if g.Endpoint != "" {
		fmt.Fprintf(tw, "  Endpoint:\t%s\n", g.Endpoint)
	}
	if g.Kind == group.KindTriad {
		fmt.Fprintf(tw, "  Active member:\t%s\n", orDash(g.Active))
		fmt.Fprintf(tw, "  Quorum:\t%s\n", g.Quorum)
		fmt.Fprintf(tw, "  Epoch:\t%d\n", g.Epoch)
		last := ""
		if g.Sync.LastSyncTime != nil {
			last = fmt.Sprintf(", last sync %s ago", age(g.Sync.LastSyncTime.Time, now))
		}
		fmt.Fprintf(tw, "  Sync:\trevision %d, synchronized: %s%s\n", g.Sync.Revision, yesNo(g.Sync.Synchronized), last)
	} else {
		fmt.Fprintf(tw, "  Mode:\t%s\n", g.Mode)
		if g.Roles != "" {
			fmt.Fprintf(tw, "  Roles:\t%s\n", g.Roles)
		}
		if g.Mode == string(licensehav1.ActivePassive) {
			fmt.Fprintf(tw, "  Active server:\t%s\n", orDash(g.Active))
		}
		last := ""
		if g.Sync.LastSyncTime != nil {
			last = fmt.Sprintf(" (last sync %s ago)", age(g.Sync.LastSyncTime.Time, now))
		}
		fmt.Fprintf(tw, "  Sync state:\t%s%s\n", orDash(g.SyncState), last)
	}
	fmt.Fprintf(tw, "  Failovers:\t%d\n", g.Failovers)
	if s := g.Settings; s != nil {
		applied := "none"
		if len(s.AppliedMembers) > 0 {
			applied = strings.Join(s.AppliedMembers, ", ")
		}
		fmt.Fprintf(tw, "  Settings:\tConfigMap %s, hash %s, synchronized: %s (running them: %s)\n",
			s.ConfigMap, shortHash(s.Hash), yesNo(s.Synchronized), applied)
	}
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	memberCol := "Member"
	if g.Kind == group.KindBackupPair {
		memberCol = "Server"
	}
	members := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		col(memberCol, false), col("Role", false), col("State", false), col("Ready", false), col("Pod", false),
		col("Pod IP", false), col("Active", false),
		col("Settings", true), col("Heartbeat", true), col("Node", true), col("Restarts", true), col("Version", true),
	}}
	for _, m := range g.Members {
		active := ""
		if m.Active {
			active = "*"
		}
		heartbeat, restarts := "-", "-"
		if m.LastHeartbeatTime != nil {
			heartbeat = age(m.LastHeartbeatTime.Time, now) + " ago"
		}
		if m.Restarts != nil {
			restarts = fmt.Sprint(*m.Restarts)
		}
		members.Rows = append(members.Rows, row(m.Name, orDash(m.Role), orDash(m.State), m.Ready, orDash(m.Pod), orDash(m.PodIP), active,
			shortHash(m.SettingsHash), heartbeat, orDash(m.Node), restarts, orDash(m.Version)))
	}
	if err := printTable(w, members, wide); err != nil {
		return err
	}

	fmt.Fprintln(w)
	if len(g.Licenses) == 0 {
		fmt.Fprintln(w, "  Licences: none reported")
	} else {
		licences := &metav1.Table{}
		if g.Kind == group.KindBackupPair {
			licences.ColumnDefinitions = append(licences.ColumnDefinitions, col("Server", false))
		}
		licences.ColumnDefinitions = append(licences.ColumnDefinitions, col("Licence", false), col("Product", false),
			col("Edition", false), col("Printers", false), col("Expires", false), col("Valid", false))
		for _, l := range g.Licenses {
			expires := "-"
			if l.Expires != nil {
				expires = l.Expires.UTC().Format(time.DateOnly)
			}
			valid := yesNo(l.Valid)
			if !l.Valid && l.Message != "" {
				valid = "no: " + l.Message
			}
			cells := []any{l.ID, orDash(l.Product), orDash(l.Edition), l.Printers, expires, valid}
			if g.Kind == group.KindBackupPair {
				cells = append([]any{l.Server}, cells...)
			}
			licences.Rows = append(licences.Rows, row(cells...))
		}
		if err := printTable(w, licences, wide); err != nil {
			return err
		}
	}
	if len(g.UnmappedLicenses) > 0 {
		fmt.Fprintf(w, "  Unmapped licences (their clients cannot fail over): %s\n", strings.Join(g.UnmappedLicenses, ", "))
	}

	fmt.Fprintln(w)
	if len(g.Conditions) == 0 {
		fmt.Fprintln(w, "  Conditions: none reported yet")
	} else {
		conds := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
			col("Condition", false), col("Status", false), col("Reason", false), col("Since", false), col("Message", false),
		}}
		for _, c := range g.Conditions {
			conds.Rows = append(conds.Rows, row(c.Type, string(c.Status), orDash(c.Reason), age(c.LastTransitionTime.Time, now), c.Message))
		}
		if err := printTable(w, conds, wide); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	if len(g.Events) == 0 {
		fmt.Fprintln(w, "  Events: none")
		return nil
	}
	evs := &metav1.Table{ColumnDefinitions: []metav1.TableColumnDefinition{
		col("Age", false), col("Type", false), col("Reason", false), col("Message", false),
	}}
	for _, e := range g.Events {
		a := age(e.Time, now)
		if e.Count > 1 {
			a = fmt.Sprintf("%s (x%d)", a, e.Count)
		}
		evs.Rows = append(evs.Rows, row(a, e.Type, e.Reason, e.Message))
	}
	return printTable(w, evs, wide)
}
