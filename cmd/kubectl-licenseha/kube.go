package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
)

// kube is a connection to the cluster named by the kubectl flags
// (--kubeconfig, --context, --namespace, ...).
type kube struct {
	c client.Client
	// cs is a typed clientset, for what controller-runtime's client does not
	// do (pod logs).
	cs kubernetes.Interface
	// ns is the namespace of the command: --namespace, or the context's.
	ns string
}

// readBackoff paces the retries of reads that failed transiently (the API
// server overloaded or timing out, a connection reset): about 3 s in all.
var readBackoff = wait.Backoff{Steps: 5, Duration: 200 * time.Millisecond, Factor: 2, Jitter: 0.1}

// retriable says whether a failed request may succeed when repeated
// unchanged: server timeouts, throttling, an unavailable or overloaded API
// server, connections refused or reset.
func retriable(err error) bool {
	switch {
	case err == nil:
		return false
	case apierrors.IsServerTimeout(err), apierrors.IsTimeout(err), apierrors.IsTooManyRequests(err),
		apierrors.IsServiceUnavailable(err), apierrors.IsUnexpectedServerError(err):
		return true
	case utilnet.IsConnectionReset(err), utilnet.IsConnectionRefused(err), utilnet.IsProbableEOF(err):
		return true
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	}
	return false
}

// readRetry runs a read, repeating it with readBackoff while it fails
// transiently (retriable) and the context lasts.
func readRetry(ctx context.Context, read func() error) error {
	return retry.OnError(readBackoff, func(err error) bool { return ctx.Err() == nil && retriable(err) }, read)
}

// get reads one object, retrying transient failures.
func (k *kube) get(ctx context.Context, key client.ObjectKey, obj client.Object) error {
	return readRetry(ctx, func() error { return k.c.Get(ctx, key, obj) })
}

// list lists objects, retrying transient failures.
func (k *kube) list(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return readRetry(ctx, func() error { return k.c.List(ctx, list, opts...) })
}

// beforeWrite, when set (by tests), runs after a write's read and right
// before the write itself, with the object about to be written: a test makes
// a concurrent change there to check that the write is retried on the
// conflict and loses neither change.
var beforeWrite func(obj client.Object)

// writeRetry runs a read-modify-write (read, change, then an update or a
// patch carrying the resourceVersion read) until it does not conflict with
// a concurrent writer: retry.RetryOnConflict with client-go's default
// backoff. Each attempt reads afresh, so every check the closure makes is
// made again on the current object.
func writeRetry(write func() error) error {
	return retry.RetryOnConflict(retry.DefaultRetry, write)
}

// hookBeforeWrite calls beforeWrite if a test set it.
func hookBeforeWrite(obj client.Object) {
	if beforeWrite != nil {
		beforeWrite(obj)
	}
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
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to the cluster: %w", err)
	}
	return &kube{c: c, cs: cs, ns: ns}, nil
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
	if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &t); err != nil {
		if apierrors.IsNotFound(err) {
			var p licensehav1.LicenseBackupPair
			if k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &p) == nil {
				return nil, fmt.Errorf("%s/%s is a LicenseBackupPair, not a LicenseTriad; this command works on triads only", k.ns, name)
			}
		}
		return nil, wrapGet(err, "LicenseTriad", name, k.ns)
	}
	return &t, nil
}

func (k *kube) pair(ctx context.Context, name string) (*licensehav1.LicenseBackupPair, error) {
	var p licensehav1.LicenseBackupPair
	if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &p); err != nil {
		if apierrors.IsNotFound(err) {
			var t licensehav1.LicenseTriad
			if k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, &t) == nil {
				return nil, fmt.Errorf("%s/%s is a LicenseTriad, not a LicenseBackupPair; this command works on backup pairs only", k.ns, name)
			}
		}
		return nil, wrapGet(err, "LicenseBackupPair", name, k.ns)
	}
	return &p, nil
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
			if k.list(ctx, &l, client.InNamespace(k.ns)) == nil {
				for _, t := range l.Items {
					names = append(names, t.Name)
				}
			}
		}
		if pairs {
			var l licensehav1.LicenseBackupPairList
			if k.list(ctx, &l, client.InNamespace(k.ns)) == nil {
				for _, p := range l.Items {
					names = append(names, p.Name)
				}
			}
		}
		sort.Strings(names)
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}
