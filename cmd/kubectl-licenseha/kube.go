package main

import (
	"context"
	"errors"
	"fmt"
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

// patchRetry is the read-modify-write of one object: read gets it afresh,
// change edits it (false: nothing to write), and the patch carries the
// resourceVersion read, so a concurrent change is never overwritten: on a
// conflict it all runs again (writeRetry), checking afresh. An error of read
// or change ends it and is returned as is; a failed write is returned after
// what ("changing ns/name").
func patchRetry[T client.Object](ctx context.Context, k *kube, what string, read func() (T, error), change func(T) (bool, error)) (T, bool, error) {
	var obj, zero T
	var changed bool
	var stop error
	err := writeRetry(func() error {
		var err error
		if obj, err = read(); err != nil {
			stop = err
			return err
		}
		orig := obj.DeepCopyObject().(client.Object)
		if changed, err = change(obj); err != nil {
			stop = err
			return err
		}
		if !changed {
			return nil
		}
		hookBeforeWrite(obj)
		return k.c.Patch(ctx, obj, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}), client.FieldOwner(fieldManager))
	})
	if stop != nil {
		return zero, false, stop
	}
	if err != nil {
		return zero, false, fmt.Errorf("%s: %w", what, err)
	}
	return obj, changed, nil
}

// pollGroup reads the group NAME every pollInterval until done holds for
// it. A deleted group ends the wait with an error, a failed read is tried
// again; when the timeout runs out after the group was read, timedOut
// explains it from the last object read.
func pollGroup[T any, PT interface {
	*T
	client.Object
}](ctx context.Context, k *kube, name string, timeout time.Duration, done func(PT) bool, timedOut func(last PT) error) error {
	var last PT
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		cur := PT(new(T))
		if err := k.get(ctx, client.ObjectKey{Namespace: k.ns, Name: name}, cur); err != nil {
			if apierrors.IsNotFound(err) {
				return false, fmt.Errorf("%s/%s was deleted while waiting", k.ns, name)
			}
			return false, nil // transient: keep trying until the timeout
		}
		last = cur
		return done(cur), nil
	})
	if err != nil && wait.Interrupted(err) && ctx.Err() == nil && last != nil {
		return timedOut(last)
	}
	return err
}

// hookBeforeWrite calls beforeWrite if a test set it.
func hookBeforeWrite(obj client.Object) {
	if beforeWrite != nil {
		beforeWrite(obj)
	}
}

// pollInterval is how often the --wait loops look at the cluster.
var pollInterval = time.Second

// waitFlags are --wait and --timeout of the commands that change a group and
// then wait for the outcome.
type waitFlags struct {
	wait    bool
	timeout time.Duration
}

// addWaitFlags adds --wait (its usage: until) and --timeout (default
// timeout) to cmd.
func addWaitFlags(cmd *cobra.Command, until string, timeout time.Duration) *waitFlags {
	f := &waitFlags{}
	cmd.Flags().BoolVar(&f.wait, "wait", true, until)
	cmd.Flags().DurationVar(&f.timeout, "timeout", timeout, "how long to wait")
	return f
}

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
