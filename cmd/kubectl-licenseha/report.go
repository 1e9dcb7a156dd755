package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/yaml"

	"github.com/licenseha/licenseha/internal/builder"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/version"
)

// reportOptions are the flags of `report` that shape what is collected.
type reportOptions struct {
	logLimitBytes int64
	logsSince     time.Duration
	// allowUnredacted collects logs and ConfigMaps even when a Secret could
	// not be read (its values then cannot be redacted).
	allowUnredacted bool
}

func newReportCmd(o *Options) *cobra.Command {
	var (
		out   string
		force bool
		ro    = reportOptions{}
	)
	cmd := &cobra.Command{
		Use:   "report GROUP [-o FILE.zip]",
		Short: "Write a support bundle (zip) of a group: object, status, events, pods, ConfigMaps, Secret names, Leases, redacted logs",
		Long: `Collect what support needs to look into a LicenseTriad or LicenseBackupPair into one zip file: the group
object and its status, the Events of the group and its objects, the member pods (YAML) and their logs
(current, and previous where a container restarted), the ConfigMaps of the group (full), the Leases, and
the Secrets the group references or owns as their names, keys and value sizes only.

Every value of those Secrets is replaced by [REDACTED] wherever it appears in the report (logs,
manifests, ConfigMaps, events), as are private keys, licence signatures, bearer tokens and passwords.
A piece that cannot be collected (no permission, a pod without logs) is listed in the bundle's
README.md and manifest.json, and the rest is still written.`,
		Example: `  kubectl licenseha report plant-a
  kubectl licenseha report plant-b -o plant-b-report.zip --logs-since 24h
  kubectl licenseha report plant-a -o - > report.zip`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, true, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if ro.logLimitBytes < 0 || ro.logsSince < 0 {
				return errors.New("--log-limit-bytes and --logs-since must not be negative")
			}
			k, err := o.kube()
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			b, r, err := k.collectReport(cmd.Context(), args[0], ro, now)
			if err != nil {
				return err
			}
			if out == "" {
				out = b.Root + ".zip"
			}
			if out == "-" {
				if err := writeReportZip(o.Out, b, r); err != nil {
					return err
				}
			} else if err := writeFileAtomic(out, force, func(w io.Writer) error { return writeReportZip(w, b, r) }); err != nil {
				return err
			}
			msg := o.Out
			if out == "-" {
				msg = o.ErrOut
			}
			fmt.Fprintf(msg, "Wrote the report of %s %s/%s to %s: %d files, %d Secret(s) redacted\n",
				b.Kind, b.Namespace, b.Name, out, len(b.Files)+2, len(b.SecretsRead))
			for _, f := range b.Failed {
				fmt.Fprintf(msg, "  not collected: %s: %s\n", f.What, oneLine(f.Reason))
			}
			if len(b.SecretsUnreadable) > 0 {
				fmt.Fprintf(msg, "  warning: Secret(s) %s could not be read; their values could not be redacted\n", strings.Join(b.SecretsUnreadable, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", `zip file to write ("-" for standard output; default licenseha-report-<namespace>-<group>-<time>.zip)`)
	cmd.Flags().BoolVar(&force, "force", false, "overwrite the output file if it exists")
	cmd.Flags().Int64Var(&ro.logLimitBytes, "log-limit-bytes", 10<<20, "bytes of log to keep per container and run, the most recent (0: no limit)")
	cmd.Flags().DurationVar(&ro.logsSince, "logs-since", 0, "collect only the logs of this recent period, e.g. 24h (0: all)")
	cmd.Flags().BoolVar(&ro.allowUnredacted, "allow-unredacted", false, "collect logs and ConfigMaps even when a Secret of the group cannot be read, so that its values cannot be redacted from them")
	_ = cmd.MarkFlagFilename("output", "zip")
	return cmd
}

// writeFileAtomic writes a file through a temporary file in the same
// folder, so an interrupted report leaves no half-written zip.
func writeFileAtomic(path string, force bool, write func(io.Writer) error) error {
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("%s exists; pass --force to overwrite it, or -o another file", path)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".licenseha-report-*.zip")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// collectReport gathers a group's report. Only a group that cannot be
// found fails it; every other piece that fails is listed in the report.
func (k *kube) collectReport(ctx context.Context, name string, ro reportOptions, now time.Time) (*reportBundle, *redactor, error) {
	g, err := k.findGroup(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	b := &reportBundle{
		Root:      fmt.Sprintf("licenseha-report-%s-%s-%s", k.ns, name, now.Format("20060102T150405Z")),
		Kind:      g.kind,
		Namespace: k.ns,
		Name:      name,
		CreatedAt: now,
		Plugin:    version.Get().String(),
	}
	r := newRedactor()
	// names are the objects of the group, for picking their Events.
	names := map[string]bool{}

	// The group object, with its status.
	if data, err := k.objectYAML(g.obj); err != nil {
		b.fail("group.yaml", err)
	} else {
		b.add("group.yaml", "the "+g.kind+" object: metadata, spec and status", data)
	}

	// The readable status, as `status` prints it, and as JSON.
	gs := g.status()
	if err := k.addEvents(ctx, []*GroupStatus{gs}, 100); err != nil {
		b.fail("events in status.txt", err)
	}
	var buf bytes.Buffer
	if err := renderStatus(&buf, []GroupStatus{*gs}, now); err == nil {
		b.add("status.txt", "the output of kubectl licenseha status "+name, buf.Bytes())
	}
	if raw, err := json.MarshalIndent(gs, "", "  "); err == nil {
		b.add("status.json", "the output of kubectl licenseha status "+name+" -o json", append(raw, '\n'))
	}

	// Member pods.
	pods, err := k.memberPods(ctx, g)
	if err != nil {
		b.fail("pods", err)
		pods = map[string]*corev1.Pod{}
	}
	order := podMembers(g, pods)
	for _, m := range g.members {
		if pods[m] == nil {
			b.skip("pods/"+group.PodName(name, m)+".yaml", "member "+m+" has no pod")
		}
	}
	for _, m := range order {
		p := pods[m]
		names[p.Name] = true
		if data, err := k.objectYAML(p); err != nil {
			b.fail("pods/"+p.Name+".yaml", err)
		} else {
			b.add("pods/"+p.Name+".yaml", "the pod of member "+m, data)
		}
	}
	for _, m := range g.members {
		names[group.PVCName(name, m)] = true
	}
	for _, n := range []string{group.ServiceName(name), group.MembersServiceName(name), group.AgentName(name), group.NetworkPolicyName(name), group.ClientTLSName(name)} {
		names[n] = true
	}

	// Secrets: read them first, so that everything else can be redacted.
	unreadable := k.collectSecrets(ctx, b, r, g, pods, names)

	// Logs and ConfigMaps are free text that may carry secret values; they
	// are collected only when every Secret's values are known.
	redactable := len(unreadable) == 0 || ro.allowUnredacted
	unredactable := fmt.Errorf("not collected because Secret(s) %s could not be read, so their values could not be redacted; "+
		"get read access to them, or pass --allow-unredacted", strings.Join(unreadable, ", "))
	if redactable {
		k.collectConfigMaps(ctx, b, g, names)
	} else {
		b.fail("configmaps", unredactable)
	}
	k.collectLeases(ctx, b, g, names)
	k.collectEvents(ctx, b, g, names)
	if redactable {
		k.collectLogs(ctx, b, pods, order, ro)
	} else {
		b.fail("logs", unredactable)
	}
	return b, r, nil
}

// listLabelled lists the objects labelled as the group's
// (builder.SelectorLabels) into list; a failure is noted in the report as
// what (the kind, plural) could not be listed.
func (k *kube) listLabelled(ctx context.Context, b *reportBundle, g *groupTarget, list client.ObjectList, what string) bool {
	if err := k.list(ctx, list, client.InNamespace(k.ns), client.MatchingLabels(builder.SelectorLabels(g.bg))); err != nil {
		b.fail(what+" labelled as the group's", err)
		return false
	}
	return true
}

// objectYAML is an object as `kubectl get -o yaml` shows it, without
// managedFields.
func (k *kube) objectYAML(obj client.Object) ([]byte, error) {
	obj = obj.DeepCopyObject().(client.Object)
	obj.SetManagedFields(nil)
	if gvk, err := apiutil.GVKForObject(obj, k.c.Scheme()); err == nil {
		obj.GetObjectKind().SetGroupVersionKind(gvk)
	}
	return yaml.Marshal(obj)
}

// secretRefs finds the names of the Secrets a spec (a group's or a pod's)
// references, by the field names the Kubernetes and licenseha APIs use:
// secretName, *SecretRef / secretKeyRef / secret objects with a name, and
// imagePullSecrets. why gets the path of each reference.
func secretRefs(v any, path string, add func(name, why string)) {
	switch x := v.(type) {
	case map[string]any:
		keys := slices.Sorted(maps.Keys(x))
		for _, key := range keys {
			val := x[key]
			p := path + "." + key
			lower := strings.ToLower(key)
			switch {
			case key == "secretName":
				if s, ok := val.(string); ok && s != "" {
					add(s, p)
				}
			case strings.HasSuffix(lower, "secretref") || key == "secretKeyRef" || key == "secret":
				if m, ok := val.(map[string]any); ok {
					if s, ok := m["name"].(string); ok && s != "" {
						add(s, p)
					}
				}
			case key == "imagePullSecrets":
				if l, ok := val.([]any); ok {
					for _, item := range l {
						if m, ok := item.(map[string]any); ok {
							if s, ok := m["name"].(string); ok && s != "" {
								add(s, p)
							}
						}
					}
				}
			}
			secretRefs(val, p, add)
		}
	case []any:
		for i, item := range x {
			secretRefs(item, fmt.Sprintf("%s[%d]", path, i), add)
		}
	}
}

func toJSONValue(v any) any {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	var out any
	_ = json.Unmarshal(raw, &out)
	return out
}

// collectSecrets reads the Secrets the group references or owns, adds their
// values to the redactor and their summaries to the report; it returns the
// Secrets that exist but could not be read.
func (k *kube) collectSecrets(ctx context.Context, b *reportBundle, r *redactor, g *groupTarget, pods map[string]*corev1.Pod, names map[string]bool) []string {
	why := map[string][]string{}
	add := func(name, reason string) {
		for _, w := range why[name] {
			if w == reason {
				return
			}
		}
		why[name] = append(why[name], reason)
	}
	secretRefs(toJSONValue(g.spec), g.kind+".spec", add)
	for _, m := range podMembers(g, pods) {
		p := pods[m]
		secretRefs(toJSONValue(p.Spec), "pod/"+p.Name+".spec", add)
	}
	for _, n := range []string{group.AdminSecretName(g.name), group.StateName(g.name), group.ClientTLSName(g.name)} {
		add(n, "created by the operator for the group")
	}
	secrets := map[string]*corev1.Secret{}
	var owned corev1.SecretList
	if k.listLabelled(ctx, b, g, &owned, "Secrets") {
		for i := range owned.Items {
			s := &owned.Items[i]
			add(s.Name, "labelled as the group's")
			secrets[s.Name] = s
		}
	}
	exempt := func(secret, key string) bool {
		// The synced-state revision is a counter the ConfigMap of the same
		// name carries too, not a secret.
		return secret == group.StateName(g.name) && key == stateKeyRevision
	}
	sorted := slices.Sorted(maps.Keys(why))
	var summaries []SecretSummary
	var unreadable []string
	for _, n := range sorted {
		names[n] = true
		s := secrets[n]
		if s == nil {
			var sec corev1.Secret
			err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: n}, &sec)
			switch {
			case apierrors.IsNotFound(err):
				summaries = append(summaries, SecretSummary{Name: n, ReferencedBy: why[n], Exists: false})
				continue
			case err != nil:
				summaries = append(summaries, SecretSummary{Name: n, ReferencedBy: why[n], Exists: true, Error: err.Error()})
				unreadable = append(unreadable, n)
				b.fail("Secret "+n, fmt.Errorf("%w (its values could not be redacted)", err))
				continue
			}
			s = &sec
		}
		r.addSecret(s, exempt)
		summaries = append(summaries, summarizeSecret(s, why[n]))
		b.SecretsRead = append(b.SecretsRead, n)
	}
	b.SecretsUnreadable = unreadable
	data, err := yaml.Marshal(map[string]any{"secrets": summaries})
	if err != nil {
		b.fail("secrets.yaml", err)
	} else {
		b.add("secrets.yaml", "the Secrets the group references or owns: names, types, keys and value sizes only, never a value", data)
	}
	return unreadable
}

// collectConfigMaps adds the group's ConfigMaps: the operator's (config,
// synced state, those labelled as the group's) and spec.settingsRef's.
func (k *kube) collectConfigMaps(ctx context.Context, b *reportBundle, g *groupTarget, names map[string]bool) {
	want := map[string]string{
		group.ConfigName(g.name): "the group configuration the operator writes for the agents",
		group.StateName(g.name):  "the synced state the members publish (settings, usage; gzip data decompressed beside it)",
	}
	if g.settingsRef != nil && g.settingsRef.Name != "" {
		want[g.settingsRef.Name] = "the settings of spec.settingsRef"
	}
	found := map[string]*corev1.ConfigMap{}
	var labelled corev1.ConfigMapList
	if k.listLabelled(ctx, b, g, &labelled, "ConfigMaps") {
		for i := range labelled.Items {
			cm := &labelled.Items[i]
			found[cm.Name] = cm
			if want[cm.Name] == "" {
				want[cm.Name] = "a ConfigMap labelled as the group's"
			}
		}
	}
	cmNames := slices.Sorted(maps.Keys(want))
	for _, n := range cmNames {
		names[n] = true
		path := "configmaps/" + n + ".yaml"
		cm := found[n]
		if cm == nil {
			var c corev1.ConfigMap
			err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: n}, &c)
			switch {
			case apierrors.IsNotFound(err):
				b.skip(path, "ConfigMap "+n+" does not exist")
				continue
			case err != nil:
				b.fail(path, err)
				continue
			}
			cm = &c
		}
		shown, extra := configMapForReport(cm)
		data, err := k.objectYAML(shown)
		if err != nil {
			b.fail(path, err)
			continue
		}
		b.add(path, want[n], append([]byte(extra.header), data...))
		for _, f := range extra.files {
			b.add(f.Path, f.About, f.Data)
		}
	}
}

type configMapExtra struct {
	header string
	files  []reportFile
}

// configMapForReport removes a ConfigMap's binaryData, which could not be
// checked for secret values: gzip text (the synced state's settings and
// usage) is decompressed into files of its own, which are redacted like any
// other; other binary data is left out. A comment at the top says which.
func configMapForReport(cm *corev1.ConfigMap) (*corev1.ConfigMap, configMapExtra) {
	var extra configMapExtra
	if len(cm.BinaryData) == 0 {
		return cm, extra
	}
	shown := cm.DeepCopy()
	shown.BinaryData = nil
	keys := slices.Sorted(maps.Keys(cm.BinaryData))
	var hdr strings.Builder
	hdr.WriteString("# binaryData is not shown here:\n")
	for _, key := range keys {
		v := cm.BinaryData[key]
		if text, err := gunzip(v); err == nil && utf8.Valid(text) {
			p := "configmaps/" + cm.Name + "/" + strings.TrimSuffix(key, ".gz")
			fmt.Fprintf(&hdr, "#   %s: %d bytes of gzip, decompressed into %s\n", key, len(v), p)
			extra.files = append(extra.files, reportFile{Path: p, About: "binaryData " + key + " of ConfigMap " + cm.Name + ", decompressed", Data: text})
		} else {
			fmt.Fprintf(&hdr, "#   %s: %d bytes of binary data, left out (it could not be checked for secret values)\n", key, len(v))
		}
	}
	extra.header = hdr.String()
	return shown, extra
}

// collectLeases adds the Lease recording the active member and any Lease
// labelled as the group's.
func (k *kube) collectLeases(ctx context.Context, b *reportBundle, g *groupTarget, names map[string]bool) {
	leases := map[string]*coordinationv1.Lease{}
	var labelled coordinationv1.LeaseList
	if k.listLabelled(ctx, b, g, &labelled, "Leases") {
		for i := range labelled.Items {
			leases[labelled.Items[i].Name] = &labelled.Items[i]
		}
	}
	active := group.LeaseName(g.name)
	if leases[active] == nil {
		var l coordinationv1.Lease
		err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: active}, &l)
		switch {
		case apierrors.IsNotFound(err):
			b.skip("leases/"+active+".yaml", "Lease "+active+" does not exist (no member has been active yet)")
		case err != nil:
			b.fail("leases/"+active+".yaml", err)
		default:
			leases[active] = &l
		}
	}
	leaseNames := slices.Sorted(maps.Keys(leases))
	for _, n := range leaseNames {
		names[n] = true
		about := "a Lease labelled as the group's"
		if n == active {
			about = "the Lease recording the active member, its epoch and the reason of the last change"
		}
		if data, err := k.objectYAML(leases[n]); err != nil {
			b.fail("leases/"+n+".yaml", err)
		} else {
			b.add("leases/"+n+".yaml", about, data)
		}
	}
}

// collectEvents adds the Events (events.k8s.io/v1) regarding the group and
// its objects, oldest first.
func (k *kube) collectEvents(ctx context.Context, b *reportBundle, g *groupTarget, names map[string]bool) {
	var list eventsv1.EventList
	if err := k.list(ctx, &list, client.InNamespace(k.ns)); err != nil {
		b.fail("events.yaml", err)
		return
	}
	items := selectEvents(list.Items, g.kind, g.name, names)
	objs := make([]any, 0, len(items))
	for i := range items {
		e := &items[i]
		data, err := k.objectYAML(e)
		if err != nil {
			continue
		}
		var v any
		if yaml.Unmarshal(data, &v) == nil {
			objs = append(objs, v)
		}
	}
	data, err := yaml.Marshal(map[string]any{"apiVersion": "v1", "kind": "List", "items": objs})
	if err != nil {
		b.fail("events.yaml", err)
		return
	}
	b.add("events.yaml", "the Events of the group, its pods and its other objects, oldest first", data)
}

// selectEvents picks the events regarding the group (kind and name) or one
// of the named objects, oldest first.
func selectEvents(items []eventsv1.Event, kind, name string, names map[string]bool) []eventsv1.Event {
	var out []eventsv1.Event
	for _, e := range items {
		if (e.Regarding.Kind == kind && e.Regarding.Name == name) || (e.Regarding.Name != name && names[e.Regarding.Name]) {
			out = append(out, e)
		}
	}
	at := func(e *eventsv1.Event) time.Time {
		t := e.EventTime.Time
		if e.Series != nil {
			t = e.Series.LastObservedTime.Time
		}
		if !e.DeprecatedLastTimestamp.IsZero() && e.DeprecatedLastTimestamp.After(t) {
			t = e.DeprecatedLastTimestamp.Time
		}
		if t.IsZero() {
			t = e.CreationTimestamp.Time
		}
		return t
	}
	sort.SliceStable(out, func(i, j int) bool { return at(&out[i]).Before(at(&out[j])) })
	return out
}

// collectLogs adds the logs of every container (init containers too) of
// the member pods: the current run's, and the previous run's where the
// container restarted.
func (k *kube) collectLogs(ctx context.Context, b *reportBundle, pods map[string]*corev1.Pod, order []string, ro reportOptions) {
	for _, m := range order {
		p := pods[m]
		statuses := map[string]corev1.ContainerStatus{}
		for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			statuses[s.Name] = s
		}
		for _, c := range podContainers(p, true) {
			base := "logs/" + p.Name + "/" + c
			k.collectLog(ctx, b, p.Name, c, false, base+".log", fmt.Sprintf("log of container %s of member %s (pod %s)", c, m, p.Name), ro)
			st, ok := statuses[c]
			if !ok || (st.RestartCount == 0 && st.LastTerminationState.Terminated == nil) {
				b.skip(base+".previous.log", "container "+c+" of pod "+p.Name+" has not restarted: there is no previous log")
				continue
			}
			k.collectLog(ctx, b, p.Name, c, true, base+".previous.log",
				fmt.Sprintf("log of the previous run of container %s of member %s (pod %s; %d restarts)", c, m, p.Name, st.RestartCount), ro)
		}
	}
}

func (k *kube) collectLog(ctx context.Context, b *reportBundle, pod, container string, previous bool, path, about string, ro reportOptions) {
	opts := &corev1.PodLogOptions{Container: container, Previous: previous, Timestamps: true}
	if ro.logsSince > 0 {
		s := int64(ro.logsSince.Seconds())
		opts.SinceSeconds = &s
	}
	var tail *tailBuffer
	err := readRetry(ctx, func() error {
		rc, err := openPodLogs(ctx, k, pod, opts)
		if err != nil {
			return err
		}
		defer rc.Close()
		tail = &tailBuffer{limit: int(ro.logLimitBytes)}
		_, err = io.Copy(tail, rc)
		return err
	})
	if err != nil {
		b.fail(path, err)
		return
	}
	b.add(path, about, tail.bytes())
}

// tailBuffer keeps the last limit bytes written to it (all with limit 0).
type tailBuffer struct {
	limit int
	buf   []byte
	cut   bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if t.limit > 0 && len(t.buf) > 2*t.limit {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-t.limit:]...)
		t.cut = true
	}
	return len(p), nil
}

// bytes returns the kept log; when earlier lines were cut, it starts at a
// whole line with a note saying so.
func (t *tailBuffer) bytes() []byte {
	data := t.buf
	if t.limit > 0 && len(data) > t.limit {
		data = data[len(data)-t.limit:]
		t.cut = true
	}
	if !t.cut {
		return data
	}
	if i := bytes.IndexByte(data, '\n'); i >= 0 {
		data = data[i+1:]
	}
	note := fmt.Sprintf("[kubectl licenseha report: earlier lines cut, kept the last %d bytes (--log-limit-bytes)]\n", t.limit)
	return append([]byte(note), data...)
}
