package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/settings"
	"github.com/licenseha/licenseha/pkg/server"
)

// memberSettings is a member (triad) or server (pair) with the hash of
// the settings its server runs.
type memberSettings struct {
	Name  string `json:"name"`
	State string `json:"state,omitempty"`
	Hash  string `json:"hash,omitempty"`
}

// specSettings reads the settings document of the group's settingsRef.
func (k *kube) specSettings(ctx context.Context, g *groupTarget) (*corev1.ConfigMap, server.Settings, error) {
	if g.settingsRef == nil {
		return nil, server.Settings{}, fmt.Errorf("%s %s/%s has no spec.settingsRef: its servers keep the settings they hold "+
			"(see them with --published); to manage them here, create a ConfigMap with key %s and set spec.settingsRef to its name",
			g.kind, k.ns, g.name, settings.KeyYAML)
	}
	var cm corev1.ConfigMap
	if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: g.settingsRef.Name}, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, server.Settings{}, fmt.Errorf("ConfigMap %s/%s named by spec.settingsRef does not exist; create it with `settings set %s -f FILE --create`",
				k.ns, g.settingsRef.Name, g.name)
		}
		return nil, server.Settings{}, err
	}
	s, err := settings.FromConfigMap(&cm)
	if err != nil {
		return &cm, s, fmt.Errorf("ConfigMap %s/%s named by spec.settingsRef: %w", k.ns, cm.Name, err)
	}
	return &cm, s, nil
}

// publishedSettings reads the settings in the synced state <group>-state
// (a triad's active member's, a pair's main's).
func (k *kube) publishedSettings(ctx context.Context, name string) (*server.Settings, error) {
	cm, err := k.stateConfigMap(ctx, name)
	if err != nil {
		return nil, err
	}
	raw, err := gunzip(cm.BinaryData[stateKeySettings])
	if err != nil {
		return nil, fmt.Errorf("ConfigMap %s/%s holds no published settings yet (%s): %w", k.ns, cm.Name, stateKeySettings, err)
	}
	var s server.Settings
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("reading %s of ConfigMap %s/%s: %w", stateKeySettings, k.ns, cm.Name, err)
	}
	return &s, nil
}

func (k *kube) stateConfigMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	var cm corev1.ConfigMap
	if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: group.StateName(name)}, &cm); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("ConfigMap %s/%s (the synced state) does not exist yet: no member has published", k.ns, group.StateName(name))
		}
		return nil, err
	}
	return &cm, nil
}

func newSettingsCmd(o *Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "settings",
		Short: "Read, change and compare a group's license server settings (spec.settingsRef)",
		Long: `The settings of a group (access rules, printer groups, partitions, reservations) live in the ConfigMap
named by spec.settingsRef, key settings.yaml (or settings.json). "get" prints them, "set" validates a new
document and writes it into that ConfigMap (the operator hands it to the members), "diff" compares them with
what each member's server runs.`,
	}
	cmd.AddCommand(newSettingsGetCmd(o), newSettingsSetCmd(o), newSettingsDiffCmd(o))
	return cmd
}

func newSettingsGetCmd(o *Options) *cobra.Command {
	var output string
	var published bool
	cmd := &cobra.Command{
		Use:   "get GROUP",
		Short: "Print the settings of spec.settingsRef (or, with --published, those the members synced)",
		Example: `  kubectl licenseha settings get plant-a
  kubectl licenseha settings get plant-a -o json
  kubectl licenseha settings get plant-a --published`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, true, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "yaml" && output != "json" {
				return fmt.Errorf("--output %q: use yaml or json", output)
			}
			ctx := cmd.Context()
			k, g, err := o.kubeGroup(ctx, args[0])
			if err != nil {
				return err
			}
			var s server.Settings
			if published {
				p, err := k.publishedSettings(ctx, g.name)
				if err != nil {
					return err
				}
				s = *p
			} else if _, s, err = k.specSettings(ctx, g); err != nil {
				return err
			}
			return printAs(o.Out, output, s)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "yaml", "output format: yaml or json")
	cmd.Flags().BoolVar(&published, "published", false, "print the settings in the synced state <group>-state (a triad's active member's, a pair's main's) instead of the spec's")
	return cmd
}

func newSettingsSetCmd(o *Options) *cobra.Command {
	var file string
	var create bool
	cmd := &cobra.Command{
		Use:   "set GROUP -f FILE",
		Short: "Validate a settings document and write it into the ConfigMap of spec.settingsRef",
		Long: `Reads a settings document (YAML or JSON; -f - reads standard input), validates it the way the license
server does — an invalid document is refused naming the field and what is allowed, and nothing is written —
and writes it into the ConfigMap named by spec.settingsRef, under the key the ConfigMap already uses
(settings.yaml by default). The operator validates it again and hands it to the members; follow with
"settings diff GROUP" until every member runs it.`,
		Example: `  kubectl licenseha settings get plant-a > settings.yaml
  # edit settings.yaml
  kubectl licenseha settings set plant-a -f settings.yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, true, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if file == "" {
				return errors.New("give the settings document with -f FILE (or -f - for standard input)")
			}
			var data []byte
			var err error
			if file == "-" {
				data, err = io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4<<20))
			} else {
				data, err = os.ReadFile(file)
			}
			if err != nil {
				return fmt.Errorf("-f: %w", err)
			}
			s, err := settings.Parse(data)
			if err != nil {
				return fmt.Errorf("%s: %w; nothing was written", file, err)
			}
			ctx := cmd.Context()
			k, g, err := o.kubeGroup(ctx, args[0])
			if err != nil {
				return err
			}
			hash, err := k.writeSettings(ctx, g, s, data, create)
			if err != nil {
				return err
			}
			fmt.Fprintf(o.Out, "Settings of %s %s written to ConfigMap %s (hash %s); follow with: kubectl licenseha settings diff %s\n",
				g.kind, g.name, g.settingsRef.Name, shortHash(hash), g.name)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "filename", "f", "", "settings document, YAML or JSON (- reads standard input)")
	cmd.Flags().BoolVar(&create, "create", false, "create the ConfigMap named by spec.settingsRef when it does not exist")
	return cmd
}

// writeSettings stores s in the group's settings ConfigMap: the document as
// given under settings.yaml, or as JSON under settings.json when that is the
// key in use.
func (k *kube) writeSettings(ctx context.Context, g *groupTarget, s server.Settings, doc []byte, create bool) (string, error) {
	if g.settingsRef == nil {
		return "", fmt.Errorf("%s %s/%s has no spec.settingsRef; set it to the name of a ConfigMap (for example %s-settings) and run this again with --create",
			g.kind, k.ns, g.name, g.name)
	}
	hash := server.SettingsHash(s)
	var readErr error
	err := writeRetry(func() error {
		var cm corev1.ConfigMap
		err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: g.settingsRef.Name}, &cm)
		switch {
		case apierrors.IsNotFound(err) && create:
			cm.Namespace, cm.Name = k.ns, g.settingsRef.Name
			cm.Data = map[string]string{settings.KeyYAML: string(doc)}
			hookBeforeWrite(&cm)
			if err := k.c.Create(ctx, &cm, client.FieldOwner(fieldManager)); err != nil {
				if apierrors.IsAlreadyExists(err) {
					// Created meanwhile: read it and update it instead.
					return apierrors.NewConflict(corev1.Resource("configmaps"), cm.Name, err)
				}
				readErr = fmt.Errorf("creating ConfigMap %s/%s: %w", k.ns, cm.Name, err)
				return readErr
			}
			return nil
		case apierrors.IsNotFound(err):
			readErr = fmt.Errorf("ConfigMap %s/%s named by spec.settingsRef does not exist; add --create to create it", k.ns, g.settingsRef.Name)
			return readErr
		case err != nil:
			readErr = err
			return err
		}
		orig := cm.DeepCopy()
		key, data := settings.KeyYAML, doc
		if _, ok := cm.Data[settings.KeyJSON]; ok {
			key = settings.KeyJSON
			raw, err := json.MarshalIndent(s, "", "  ")
			if err != nil {
				readErr = err
				return err
			}
			data = append(raw, '\n')
		}
		if cm.Data == nil {
			cm.Data = map[string]string{}
		}
		delete(cm.Data, settings.KeyYAML)
		delete(cm.Data, settings.KeyJSON)
		cm.Data[key] = string(data)
		hookBeforeWrite(&cm)
		return k.c.Patch(ctx, &cm, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(fieldManager))
	})
	if readErr != nil {
		return "", readErr
	}
	if err != nil {
		return "", fmt.Errorf("writing ConfigMap %s/%s: %w", k.ns, g.settingsRef.Name, err)
	}
	return hash, nil
}

func shortHash(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	if h == "" {
		return "-"
	}
	return h
}

// SettingsDiff is the output of `settings diff -o json`.
type SettingsDiff struct {
	Group string `json:"group"`
	// SpecHash is the hash of the spec's settings document.
	SpecHash string `json:"specHash"`
	// InEffectHash is the hash the operator hands to the members (the
	// last valid settings while the document is invalid).
	InEffectHash string `json:"inEffectHash,omitempty"`
	// Members are the members (servers) with the hash they run and whether
	// it matches the spec.
	Members []MemberSettingsDiff `json:"members"`
	// Published is the line diff between the spec's settings and those in
	// the synced state (a triad's active member's, a pair's main's); empty
	// when equal.
	Published []string `json:"published,omitempty"`
}

// MemberSettingsDiff is one member in SettingsDiff.
type MemberSettingsDiff struct {
	memberSettings
	Matches bool `json:"matches"`
}

func newSettingsDiffCmd(o *Options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "diff GROUP",
		Short: "Compare the settings of spec.settingsRef with what each member's server runs",
		Long: `Shows, per member (triad) or server (pair), the hash of the settings its server runs as its agent reports
it, and whether it is the spec's; then the line differences between the spec's settings and the settings in
the synced state (those the triad's active member or the pair's main published). Exits with an error when a
running member differs.`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeGroups(o, true, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" {
				return fmt.Errorf("--output %q: use json, or nothing for text", output)
			}
			ctx := cmd.Context()
			k, g, err := o.kubeGroup(ctx, args[0])
			if err != nil {
				return err
			}
			_, spec, err := k.specSettings(ctx, g)
			if err != nil {
				return err
			}
			d := SettingsDiff{Group: k.ns + "/" + g.name, SpecHash: server.SettingsHash(spec)}
			if g.settings != nil {
				d.InEffectHash = g.settings.Hash
			}
			differ := 0
			for _, m := range g.running {
				md := MemberSettingsDiff{memberSettings: m, Matches: m.Hash == d.SpecHash}
				if m.Hash != "" && !md.Matches {
					differ++
				}
				d.Members = append(d.Members, md)
			}
			if pub, err := k.publishedSettings(ctx, g.name); err == nil {
				a, _ := settings.Marshal(spec)
				b, _ := settings.Marshal(*pub)
				d.Published = lineDiff(string(a), string(b))
			}
			if output == "json" {
				if err := printJSON(o.Out, d); err != nil {
					return err
				}
			} else {
				renderSettingsDiff(o.Out, g, d)
			}
			if differ > 0 {
				return fmt.Errorf("%d member(s) of %s run settings other than the spec's", differ, g.name)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json, or empty for text")
	return cmd
}

func renderSettingsDiff(w io.Writer, g *groupTarget, d SettingsDiff) {
	fmt.Fprintf(w, "Spec (ConfigMap %s): hash %s\n", g.settingsRef.Name, shortHash(d.SpecHash))
	if d.InEffectHash != "" && d.InEffectHash != d.SpecHash {
		fmt.Fprintf(w, "In effect: hash %s (the operator has not accepted the spec's document yet, or it is invalid: see condition SettingsValid)\n", shortHash(d.InEffectHash))
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tSTATE\tSETTINGS\tMATCHES SPEC")
	for _, m := range d.Members {
		match := yesNo(m.Matches)
		if m.Hash == "" {
			match = "unknown"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, orDash(m.State), shortHash(m.Hash), match)
	}
	_ = tw.Flush()
	who := g.publishedBy
	if len(d.Published) == 0 {
		fmt.Fprintf(w, "The synced state (published by %s) holds the spec's settings.\n", who)
		return
	}
	fmt.Fprintf(w, "--- spec\n+++ synced state (published by %s)\n%s\n", who, strings.Join(d.Published, "\n"))
}

// lineDiff returns the lines of a and b in diff order, "-" for lines only
// in a, "+" for lines only in b, " " for common lines; nil when equal.
func lineDiff(a, b string) []string {
	if a == b {
		return nil
	}
	x, y := strings.Split(strings.TrimRight(a, "\n"), "\n"), strings.Split(strings.TrimRight(b, "\n"), "\n")
	// Longest common subsequence, from the ends.
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var out []string
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			out = append(out, " "+x[i])
			i, j = i+1, j+1
		case j < len(y) && (i == len(x) || lcs[i][j+1] >= lcs[i+1][j]):
			out = append(out, "+"+y[j])
			j++
		default:
			out = append(out, "-"+x[i])
			i++
		}
	}
	return out
}
