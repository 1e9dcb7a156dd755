package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/licenseha/licenseha/internal/version"
)

// VersionInfo is what `version` reports; -o json|yaml print it as is.
type VersionInfo struct {
	// Plugin is this binary's version.
	Plugin version.Info `json:"plugin"`
	// Operators are the operator Deployments found: usually one, several
	// when operators each watch their own namespaces.
	Operators []OperatorVersion `json:"operators,omitempty"`
	// OperatorError says why no operator was found.
	OperatorError string `json:"operatorError,omitempty"`
}

// OperatorVersion is the version of one operator Deployment.
type OperatorVersion struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Version is the tag of the operator's image, or, for an image pinned by
	// digest alone, the Deployment's app.kubernetes.io/version label;
	// "unknown" when neither says.
	Version string `json:"version"`
	Image   string `json:"image"`
}

const (
	// defaultOperatorSelector matches the operator's Deployment from the chart
	// (without nameOverride) and from config/default.
	defaultOperatorSelector = "app.kubernetes.io/name=licenseha,app.kubernetes.io/component=operator"
	// defaultOperatorNamespace is where both install the operator; looked in
	// when listing Deployments in all namespaces is not allowed.
	defaultOperatorNamespace = "licenseha-system"
	versionLabel             = "app.kubernetes.io/version"
)

// versionTimeout bounds the look for the operator: `version` never hangs
// on an unreachable cluster.
var versionTimeout = 15 * time.Second

func newVersionCmd(o *Options) *cobra.Command {
	var (
		output, selector, operatorNamespace string
		clientOnly                          bool
	)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the plugin's version and the operator's",
		Long: `Show the version of this plugin and of the licenseha operator in the cluster. The operator is
found by its Deployment (labels ` + defaultOperatorSelector + `, in any namespace, or in
` + defaultOperatorNamespace + ` when Deployments of all namespaces may not be listed); its version is the
tag of its image, or the Deployment's ` + versionLabel + ` label for an image pinned by digest.
Nothing is changed. When no operator is found the operator's version is "unknown" with the reason,
and the command still succeeds.`,
		Example: `  kubectl licenseha version
  kubectl licenseha version --client
  kubectl licenseha version -o json | jq -r '.operators[].version'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "" && output != "json" && output != "yaml" {
				return fmt.Errorf("--output %q: use json, yaml, or nothing for text", output)
			}
			sel, err := labels.Parse(selector)
			if err != nil {
				return fmt.Errorf("--operator-selector: %w", err)
			}
			info := VersionInfo{Plugin: version.Get()}
			if !clientOnly {
				ctx, cancel := context.WithTimeout(cmd.Context(), versionTimeout)
				defer cancel()
				k, err := o.kube()
				if err == nil {
					info.Operators, err = findOperators(ctx, k.c, operatorNamespace, sel)
				}
				if err != nil {
					info.OperatorError = "operator not found: " + err.Error()
				}
			}
			if output != "" {
				return printAs(o.Out, output, info)
			}
			return renderVersion(o.Out, info, clientOnly)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: text)")
	cmd.Flags().BoolVar(&clientOnly, "client", false, "show the plugin's version only; do not contact the cluster")
	cmd.Flags().StringVar(&selector, "operator-selector", defaultOperatorSelector, "labels of the operator's Deployment (another app.kubernetes.io/name with the chart's nameOverride)")
	cmd.Flags().StringVar(&operatorNamespace, "operator-namespace", "", "look for the operator in this namespace only (default: all namespaces)")
	return cmd
}

func renderVersion(w io.Writer, info VersionInfo, clientOnly bool) error {
	if _, err := fmt.Fprintf(w, "Plugin:   %s\n", info.Plugin); err != nil {
		return err
	}
	if clientOnly {
		return nil
	}
	if len(info.Operators) == 0 {
		_, err := fmt.Fprintf(w, "Operator: unknown (%s)\n", info.OperatorError)
		return err
	}
	for _, op := range info.Operators {
		if _, err := fmt.Fprintf(w, "Operator: %s (deployment %s/%s, image %s)\n", op.Version, op.Namespace, op.Name, op.Image); err != nil {
			return err
		}
	}
	return nil
}

// findOperators lists the Deployments sel matches, in namespace ns or, when
// ns is empty, in all namespaces (in defaultOperatorNamespace when that is
// forbidden). It only reads. An error says why none was found.
func findOperators(ctx context.Context, c client.Reader, ns string, sel labels.Selector) ([]OperatorVersion, error) {
	list := func(ns string) ([]appsv1.Deployment, error) {
		var l appsv1.DeploymentList
		opts := []client.ListOption{client.MatchingLabelsSelector{Selector: sel}}
		if ns != "" {
			opts = append(opts, client.InNamespace(ns))
		}
		if err := c.List(ctx, &l, opts...); err != nil {
			return nil, err
		}
		return l.Items, nil
	}
	where := "in any namespace"
	if ns != "" {
		where = fmt.Sprintf("in namespace %q", ns)
	}
	items, err := list(ns)
	if ns == "" && apierrors.IsForbidden(err) {
		// Not allowed to list cluster-wide: look where the chart's and
		// kustomize's instructions install it.
		where = fmt.Sprintf("in namespace %q (Deployments of all namespaces may not be listed; pass --operator-namespace)", defaultOperatorNamespace)
		items, err = list(defaultOperatorNamespace)
	}
	if err != nil {
		if apierrors.IsForbidden(err) {
			return nil, fmt.Errorf("not allowed to list Deployments %s: %w", where, err)
		}
		return nil, fmt.Errorf("listing Deployments %s: %w", where, err)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("no Deployment labelled %s %s", sel, where)
	}
	out := make([]OperatorVersion, 0, len(items))
	for i := range items {
		out = append(out, operatorVersion(&items[i]))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Namespace != out[j].Namespace {
			return out[i].Namespace < out[j].Namespace
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// operatorVersion reads the version of an operator Deployment from the
// image of its container "manager" (the only one, unless a user added
// sidecars).
func operatorVersion(d *appsv1.Deployment) OperatorVersion {
	v := OperatorVersion{Namespace: d.Namespace, Name: d.Name}
	containers := d.Spec.Template.Spec.Containers
	for _, c := range containers {
		if c.Name == "manager" {
			v.Image = c.Image
		}
	}
	if v.Image == "" && len(containers) > 0 {
		v.Image = containers[0].Image
	}
	v.Version = imageTag(v.Image)
	if v.Version == "" {
		v.Version = d.Labels[versionLabel]
	}
	if v.Version == "" {
		v.Version = "unknown"
	}
	return v
}

// imageTag is the tag of an image reference ("registry:5000/repo:tag@sha256:..."
// gives "tag"); empty without one.
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		image = image[:i]
	}
	name := image[strings.LastIndex(image, "/")+1:]
	if i := strings.LastIndex(name, ":"); i >= 0 {
		return name[i+1:]
	}
	return ""
}
