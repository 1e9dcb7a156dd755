package agent

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strings"
)

// TokenDir is where the kubelet mounts the pod's service-account token (and
// the cluster CA and namespace) for the agent.
const TokenDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// The license server runs as the agent's child, in the same container, as
// the same user: file permissions cannot keep it from the service-account
// token the agent talks to the API server with. Where the kernel offers
// Landlock (Linux 5.19 or newer with the landlock LSM enabled, and a
// container runtime whose seccomp profile lets its calls through), the
// agent starts the server through `agent sandbox`, which restricts itself,
// and with it the server it then execs, to every path of the filesystem
// except the token directory; the restriction is inherited by everything the
// server starts and cannot be lifted. It needs no privilege or capability,
// only no_new_privs, which the restricted Pod Security Standard implies
// (allowPrivilegeEscalation: false).
//
// Where Landlock is missing the server runs unrestricted and can read the
// token; the agent logs it and reports it in
// licenseha_agent_server_token_hidden.

// sandboxStatus is the line `agent sandbox` writes to its status pipe just
// before it execs the server: "hidden <detail>" or "exposed <reason>".
type sandboxStatus struct {
	hidden bool
	detail string
}

func (s sandboxStatus) String() string {
	if s.hidden {
		return "hidden " + s.detail
	}
	return "exposed " + s.detail
}

// readSandboxStatus reads the status line. ok is false when there is none:
// the helper ended (or was killed with the server's process group) before
// it got to exec, so no server ran.
func readSandboxStatus(f *os.File) (st sandboxStatus, ok bool) {
	line, _ := bufio.NewReader(f).ReadString('\n')
	line = strings.TrimSpace(line)
	if verdict, detail, found := strings.Cut(line, " "); found && (verdict == "hidden" || verdict == "exposed") {
		return sandboxStatus{hidden: verdict == "hidden", detail: detail}, true
	}
	if line != "" {
		return sandboxStatus{detail: fmt.Sprintf("unexpected status from the sandbox helper: %q", line)}, true
	}
	return sandboxStatus{}, false
}

// SandboxMain is `agent sandbox --hide DIR [--status-fd N] -- COMMAND...`:
// the agent starts the license server through it (see SandboxExec).
func SandboxMain(args []string) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	hide := fs.String("hide", TokenDir, "Directory the command must not reach.")
	statusFD := fs.Int("status-fd", 0, "File descriptor to write the outcome to (0: none).")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var status *os.File
	if *statusFD > 2 {
		status = os.NewFile(uintptr(*statusFD), "sandbox-status")
	}
	return SandboxExec(*hide, status, fs.Args())
}

// reportSandbox logs, when it changes, whether the server could be kept from
// the token, and sets licenseha_agent_server_token_hidden.
func (a *Agent) reportSandbox(hidden bool, detail string) {
	a.mu.Lock()
	changed := a.tokenHidden == nil || *a.tokenHidden != hidden
	a.tokenHidden = &hidden
	a.mu.Unlock()
	if hidden {
		a.metrics.tokenHidden.Set(1)
	} else {
		a.metrics.tokenHidden.Set(0)
	}
	if !changed {
		return
	}
	if hidden {
		a.log.Info("The license server cannot read the service-account token", "sandbox", detail)
	} else {
		a.log.Info("WARNING: the license server can read the service-account token; the node offers no way to hide it", "reason", detail)
	}
}
