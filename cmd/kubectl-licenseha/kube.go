package main

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// kube is a connection to the cluster named by the kubectl flags
// (--kubeconfig, --context, --namespace, ...).
type kube struct {
	c client.Client
	// ns is the namespace of the command: --namespace, or the context's.
	ns string
}

// pollInterval is how often the --wait loops look at the cluster.
var pollInterval = time.Second

func (o *Options) kube() (*kube, error) {
	cfg, err := o.ConfigFlags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	ns, _, err := o.ConfigFlags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("finding the namespace: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := licensehav1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	return &kube{c: c, ns: ns}, nil
}

// notFound explains a missing group: which namespace was searched, and how
// to find the groups that exist.
func notFound(kind, name, ns string) error {
	return fmt.Errorf("%s %q not found in namespace %q; list the groups of all namespaces with: kubectl get licenseha -A (and pass -n NAMESPACE)", kind, name, ns)
}

// wrapGet turns a NotFound from getting a group into notFound.
func wrapGet(err error, kind, name, ns string) error {
	if apierrors.IsNotFound(err) {
		return notFound(kind, name, ns)
	}
	return err
}

func (k *kube) triad(ctx context.Context, name string) (*licensehav1.LicenseTriad, error) {
	var t licensehav1.LicenseTriad
	if err := k.c.Get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &t); err != nil {
		if apierrors.IsNotFound(err) {
			var p licensehav1.LicenseBackupPair
			if k.c.Get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &p) == nil {
				return nil, fmt.Errorf("%s/%s is a LicenseBackupPair, not a LicenseTriad; this command works on triads only", k.ns, name)
			}
		}
		return nil, wrapGet(err, "LicenseTriad", name, k.ns)
	}
	return &t, nil
}

func (k *kube) pair(ctx context.Context, name string) (*licensehav1.LicenseBackupPair, error) {
	var p licensehav1.LicenseBackupPair
	if err := k.c.Get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			var t licensehav1.LicenseTriad
			if k.c.Get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &t) == nil {
				return nil, fmt.Errorf("%s/%s is a LicenseTriad, not a LicenseBackupPair; this command works on backup pairs only", k.ns, name)
			}
		}
		return nil, wrapGet(err, "LicenseBackupPair", name, k.ns)
	}
	return &p, nil
}

// podReady says whether a pod is running, not being deleted, and Ready.
func podReady(p *corev1.Pod) bool {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// completeGroups completes the first argument with the names of the
// groups of the given kinds in the command's namespace.
func completeGroups(o *Options, triads, pairs bool) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		k, err := o.kube()
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
		defer cancel()
		var names []string
		if triads {
			var l licensehav1.LicenseTriadList
			if k.c.List(ctx, &l, client.InNamespace(k.ns)) == nil {
				for _, t := range l.Items {
					names = append(names, t.Name)
				}
			}
		}
		if pairs {
			var l licensehav1.LicenseBackupPairList
			if k.c.List(ctx, &l, client.InNamespace(k.ns)) == nil {
				for _, p := range l.Items {
					names = append(names, p.Name)
				}
			}
		}
		sort.Strings(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
