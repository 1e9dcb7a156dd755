// Command leaderpair is the baseline of make bench-failover that a user
// would write without licenseha: a sidecar beside the reference license
// server (started as a standby) that runs client-go leader election with
// its defaults (LeaseDuration 15 s, RenewDeadline 10 s, RetryPeriod 2 s,
// ReleaseOnCancel) on a Lease, and makes its server active only while it
// leads, through the server's admin API on the pod's loopback. It is
// deliberately plain: no fencing epoch from the Lease, no serve deadline,
// no quorum; what the figures show is client-go's own behaviour.
//
// It is built into a bench-only image (make bench-failover), never into the
// licenseha image.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/licenseha/licenseha/pkg/server"
)

func main() {
	lease := flag.String("lease", "license-server", "name of the Lease")
	namespace := flag.String("namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease")
	member := flag.String("member", os.Getenv("POD_NAME"), "this replica's name (the server's --member)")
	adminURL := flag.String("admin-url", "http://127.0.0.1:5161", "the license server's admin API")
	tokenFile := flag.String("admin-token-file", "/etc/licenseha/admin/token", "the admin API's bearer token")
	leaseDuration := flag.Duration("lease-duration", 15*time.Second, "LeaseDuration (client-go's default)")
	renewDeadline := flag.Duration("renew-deadline", 10*time.Second, "RenewDeadline (client-go's default)")
	retryPeriod := flag.Duration("retry-period", 2*time.Second, "RetryPeriod (client-go's default)")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log, *lease, *namespace, *member, *adminURL, *tokenFile, *leaseDuration, *renewDeadline, *retryPeriod); err != nil {
		log.Error("leaderpair failed", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger, lease, namespace, member, adminURL, tokenFile string, leaseDuration, renewDeadline, retryPeriod time.Duration) error {
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	admin := server.NewAdminClient(adminURL, strings.TrimSpace(string(token)), &http.Client{Timeout: time.Second})
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	// As controller-runtime does: the host (pod) name plus a UUID, so a
	// restarted process is a new candidate and waits for the Lease to
	// expire like any other.
	id := member + "_" + string(uuid.NewUUID())
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: lease},
		Client:     cs.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: id},
	}
	setRole := func(ctx context.Context, role server.Role, epoch uint64) error {
		_, err := admin.SetRole(ctx, server.RoleRequest{Role: role, Epoch: epoch, Active: member})
		return err
	}

	// On SIGTERM a careful user first stops serving, then cancels the
	// election, which releases the Lease (ReleaseOnCancel): the other
	// replica may then take it at once without both serving.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-sig
		dctx, dcancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := setRole(dctx, server.RoleStandby, 0); err != nil {
			log.Error("demoting the server on SIGTERM", "err", err)
		}
		dcancel()
		cancel()
	}()

	for ctx.Err() == nil {
		leaderelection.RunOrDie(ctx, leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   leaseDuration,
			RenewDeadline:   renewDeadline,
			RetryPeriod:     retryPeriod,
			ReleaseOnCancel: true,
			Name:            lease,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(lctx context.Context) {
					epoch := uint64(time.Now().UnixMilli())
					log.Info("started leading: making the server active", "id", id, "epoch", epoch)
					// Keep the server active while leading (it may have
					// restarted as a standby).
					for {
						st, err := admin.State(lctx)
						if err == nil && st.Role != server.RoleActive {
							err = setRole(lctx, server.RoleActive, epoch)
						}
						if err != nil && lctx.Err() == nil {
							log.Error("making the server active", "err", err)
						}
						select {
						case <-lctx.Done():
							return
						case <-time.After(time.Second):
						}
					}
				},
				OnStoppedLeading: func() {
					log.Info("stopped leading: making the server a standby", "id", id)
					for i := 0; i < 5; i++ {
						dctx, dcancel := context.WithTimeout(context.Background(), time.Second)
						err := setRole(dctx, server.RoleStandby, 0)
						dcancel()
						if err == nil {
							return
						}
						log.Error("demoting the server", "err", err)
						time.Sleep(200 * time.Millisecond)
					}
				},
				OnNewLeader: func(identity string) { log.Info("leader", "identity", identity) },
			},
		})
		if ctx.Err() == nil {
			fmt.Fprintln(os.Stderr, "election ended; standing again")
		}
	}
	return nil
}
