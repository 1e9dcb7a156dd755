// Command manager is the licenseha operator: it runs the LicenseTriad and
// LicenseBackupPair reconcilers.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	licensehav1 "github.com/licenseha/licenseha/api/v1alpha1"
	"github.com/licenseha/licenseha/controllers"
	"github.com/licenseha/licenseha/internal/version"
	"github.com/licenseha/licenseha/pkg/notify"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		metricsAddr, probeAddr, leaderElectionNamespace string
		image, trustedKeysFile, watchNamespaces         string
		operatorNamespace, clusterDomain                string
		leaderElect, notifyInternal, notifyHTTPCreds    bool
		hideServerToken, showVersion                    bool
		concurrency                                     int
		pullPolicy, pullSecrets                         string
		leaseDuration, renewDeadline, retryPeriod       time.Duration
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; \"0\" disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz endpoints bind to.")
	flag.BoolVar(&leaderElect, "leader-elect", true, "Elect a leader among operator replicas, so that only one reconciles at a time.")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "Namespace of the operator's own leader-election Lease; defaults to the namespace the operator runs in.")
	flag.DurationVar(&leaseDuration, "leader-elect-lease-duration", 15*time.Second, "How long a non-leader replica waits before it may take over the operator's leadership.")
	flag.DurationVar(&renewDeadline, "leader-elect-renew-deadline", 10*time.Second, "How long the leader keeps trying to renew before it gives up leadership.")
	flag.DurationVar(&retryPeriod, "leader-elect-retry-period", 2*time.Second, "How often replicas try to acquire or renew leadership.")
	flag.IntVar(&concurrency, "max-concurrent-reconciles", 4, "How many groups of each kind are reconciled at once; a group is never reconciled twice at once.")
	flag.StringVar(&pullPolicy, "image-pull-policy", "IfNotPresent", "Pull policy of the licenseha image in member pods (the agent, and the server when it runs the licenseha image): Always, IfNotPresent or Never.")
	flag.StringVar(&pullSecrets, "image-pull-secrets", "", "Comma-separated names of image pull Secrets every member pod uses; each must exist in the group's namespace (the groups' spec.server.imagePullSecrets add to them).")
	flag.StringVar(&image, "image", os.Getenv("LICENSEHA_IMAGE"), "The licenseha image: member pods take the agent from it, and it is the default server image (env LICENSEHA_IMAGE). "+
		"Default: the image of the operator's own container, read from its pod (env POD_NAME, POD_NAMESPACE), so that whatever sets the operator's image sets the members' too; outside a pod "+devImage+".")
	flag.StringVar(&trustedKeysFile, "trusted-keys-file", os.Getenv("LICENSEHA_TRUSTED_KEYS_FILE"), "PEM file with the public keys licences must be signed with; handed to every member (env LICENSEHA_TRUSTED_KEYS_FILE).")
	flag.StringVar(&operatorNamespace, "operator-namespace", envOr("LICENSEHA_OPERATOR_NAMESPACE", inClusterNamespace()), "Namespace the operator runs in; groups' NetworkPolicies admit metrics scrapers from it by default (env LICENSEHA_OPERATOR_NAMESPACE; default: the pod's namespace).")
	flag.StringVar(&clusterDomain, "cluster-domain", envOr("LICENSEHA_CLUSTER_DOMAIN", "cluster.local"), "The cluster's DNS domain, for the fully qualified names in the client certificates the operator requests from cert-manager (env LICENSEHA_CLUSTER_DOMAIN).")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "Comma-separated namespaces the operator watches and manages groups in; empty: all namespaces. "+
		"The operator then needs permissions in those namespaces only.")
	flag.BoolVar(&notifyInternal, "notify-allow-internal", false, "Let notifications reach loopback, private and cluster-internal targets (*.svc, *.cluster.local, single-label names). "+
		"Link-local addresses stay refused.")
	flag.BoolVar(&notifyHTTPCreds, "notify-allow-http-credentials", false, "Let a webhook's bearer token, or credentials in its URL, go over plain http.")
	flag.BoolVar(&hideServerToken, "hide-server-token", true, "Have the member agents start the license server unable to read the pod's service-account token "+
		"(Landlock, where the nodes offer it). false rolls every member pod.")
	flag.BoolVar(&showVersion, "version", false, "Print the version and revision and exit.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	if showVersion {
		version.Print(os.Stdout, "manager")
		return nil
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(licensehav1.AddToScheme(scheme))

	switch corev1.PullPolicy(pullPolicy) {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		return fmt.Errorf("--image-pull-policy=%q: want Always, IfNotPresent or Never", pullPolicy)
	}
	var secretNames []string
	for _, name := range strings.Split(pullSecrets, ",") {
		if name = strings.TrimSpace(name); name != "" {
			if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
				return fmt.Errorf("--image-pull-secrets: %q is not a Secret name: %s", name, strings.Join(errs, "; "))
			}
			secretNames = append(secretNames, name)
		}
	}
	namespaces, err := parseNamespaces(watchNamespaces)
	if err != nil {
		return fmt.Errorf("--watch-namespaces: %w", err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("loading kubeconfig: %w", err)
	}
	var trustedKeys []byte
	if trustedKeysFile != "" {
		if trustedKeys, err = os.ReadFile(trustedKeysFile); err != nil {
			return fmt.Errorf("reading --trusted-keys-file: %w", err)
		}
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(namespaces...),
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "licenseha-operator.licenseha.io",
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &leaseDuration,
		RenewDeadline:                 &renewDeadline,
		RetryPeriod:                   &retryPeriod,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if image == "" {
		// The manager's uncached reader works before the manager starts.
		if image, err = ownImage(context.Background(), mgr.GetAPIReader()); err != nil {
			return fmt.Errorf("finding the licenseha image (set --image): %w", err)
		}
		log.Info("Member pods take the operator's own image", "image", image)
	}

	ctx := ctrl.SetupSignalHandler()
	if err := controllers.Setup(ctx, mgr, controllers.Config{Image: image, TrustedKeys: trustedKeys,
		OperatorNamespace: operatorNamespace, ClusterDomain: clusterDomain,
		Notify:            notify.Policy{AllowInternal: notifyInternal, AllowHTTPCredentials: notifyHTTPCreds},
		ExposeServerToken: !hideServerToken, MaxConcurrentReconciles: concurrency,
		ImagePullPolicy: corev1.PullPolicy(pullPolicy), ImagePullSecrets: secretNames}); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	v := version.Get()
	if len(namespaces) > 0 {
		log.Info("Starting operator", "version", v.Version, "revision", v.Revision, "watchNamespaces", namespaces)
	} else {
		log.Info("Starting operator", "version", v.Version, "revision", v.Revision, "watchNamespaces", "all")
	}
	return mgr.Start(ctx)
}

// inClusterNamespace is the namespace of the operator's pod, read from its
// service account; empty outside a cluster.
// devImage is the licenseha image of an operator run outside a pod.
const devImage = "ghcr.io/licenseha/licenseha:dev"

// ownImage is the image of the operator's container "manager", read from its
// own pod (POD_NAME and POD_NAMESPACE from the downward API): a kustomize
// images: entry, a Helm value or a GitOps tool that changes the operator's
// image changes the members' with it. Outside a pod it is devImage.
func ownImage(ctx context.Context, c client.Reader) (string, error) {
	name, ns := os.Getenv("POD_NAME"), os.Getenv("POD_NAMESPACE")
	if name == "" || ns == "" {
		return devImage, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	pod := &corev1.Pod{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, pod); err != nil {
		return "", fmt.Errorf("reading the operator's pod %s/%s: %w", ns, name, err)
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == "manager" {
			return c.Image, nil
		}
	}
	return "", fmt.Errorf("the operator's pod %s/%s has no container named manager", ns, name)
}

func inClusterNamespace() string {
	data, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// parseNamespaces splits the --watch-namespaces list; empty means all
// namespaces.
func parseNamespaces(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, ns := range strings.Split(s, ",") {
		ns = strings.TrimSpace(ns)
		if ns == "" {
			continue
		}
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, fmt.Errorf("%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
		if !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	return out, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
