// Command agent runs inside every member pod of a licenseha group. It
// supervises the license server as a child process, takes part in choosing
// the active member, labels its pod, and syncs the server's state.
//
//	agent install DEST                 copy this binary to DEST (init container)
//	agent run [flags] -- SERVER-CMD    supervise SERVER-CMD as the group member
//	agent sandbox [flags] -- CMD       exec CMD unable to reach the service-account token (used by run)
//	agent --version                    print the version and revision
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/go-logr/logr"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/licenseha/licenseha/internal/agent"
	"github.com/licenseha/licenseha/internal/group"
	"github.com/licenseha/licenseha/internal/version"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "install":
		if len(os.Args) != 3 {
			usage()
		}
		err = install(os.Args[2])
	case "run":
		err = run(os.Args[2:])
	case "sandbox":
		err = agent.SandboxMain(os.Args[2:])
	case "--version", "-version":
		version.Print(os.Stdout, "agent")
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: agent install DEST | agent run [flags] -- SERVER-COMMAND [ARGS...] | agent sandbox [--hide DIR] -- COMMAND [ARGS...] | agent --version")
	os.Exit(2)
}

// install copies the running binary to dest, atomically, so the server
// container (any image) can run it from a shared volume.
func install(dest string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(self)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(dest), ".agent-*")
	if err != nil {
		return err
	}
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o555); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dest)
}

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	var opts agent.Options
	fs.StringVar(&opts.GroupKind, "group-kind", "LicenseTriad", "Kind of the group: LicenseTriad or LicenseBackupPair.")
	fs.StringVar(&opts.Group, "group", "", "Name of the group.")
	fs.StringVar(&opts.Member, "member", "", "Name of this member.")
	fs.StringVar(&opts.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "Namespace of the group (default $POD_NAMESPACE).")
	fs.StringVar(&opts.Pod, "pod", os.Getenv("POD_NAME"), "Name of this pod (default $POD_NAME).")
	fs.StringVar(&opts.ConfigFile, "config-file", agent.DefaultConfigFile, "The group configuration as mounted from <group>-config.")
	fs.StringVar(&opts.AdminTokenFile, "admin-token-file", agent.DefaultAdminTokenFile, "Bearer token of the server's admin API.")
	fs.StringVar(&opts.AdminURL, "admin-url", agent.DefaultAdminURL, "Base URL of the server's local admin API.")
	fs.StringVar(&opts.HTTPAddr, "http-address", agent.DefaultHTTPAddr, "Address of the agent's probe and metrics endpoint.")
	fs.BoolVar(&opts.StopToFence, "stop-to-fence", false, "Fence the server by stopping it: run it only while this member serves (vendor servers without the licenseha admin API).")
	fs.StringVar(&opts.DataDir, "data-dir", group.DefaultDataPath, "The server's data folder (spec.server.dataPath): a backup pair syncs its spec.sync.paths.")
	fs.StringVar(&opts.PeerAddr, "peer-address", agent.DefaultPeerAddr, "Address the agent receives peer heartbeats on.")
	fs.Func("service", "One more process to supervise beside the server (spec.server.services), as JSON {name, command, always}; repeatable.", func(v string) error {
		svc, err := group.ParseServiceFlag(v)
		if err == nil {
			opts.Services = append(opts.Services, svc)
		}
		return err
	})
	hideToken := fs.Bool("hide-token", true, "Start the server unable to read the pod's service-account token, where the node offers Landlock.")
	zapOpts := zap.Options{}
	zapOpts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	opts.ServerCommand = fs.Args()
	opts.ExposeToken = !*hideToken
	if opts.Group == "" || opts.Member == "" || opts.Namespace == "" {
		return fmt.Errorf("--group, --member and --namespace (or $POD_NAMESPACE) are required")
	}
	log := zap.New(zap.UseFlagOptions(&zapOpts)).WithValues("group", opts.Namespace+"/"+opts.Group, "member", opts.Member)
	opts.Log = logr.Logger(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	return agent.Run(ctx, opts)
}
