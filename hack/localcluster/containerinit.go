package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// containerInitCommand is the hidden subcommand the node agent starts every
// container process with, in fresh mount and UTS namespaces. It prepares the
// container's file system view, joins the pod's network namespace and then
// replaces itself with the container's command.
const containerInitCommand = "container-init"

// containerSpec is what the agent hands to container-init, as a JSON file.
type containerSpec struct {
	Netns    string `json:"netns"`    // path of the pod's network namespace
	Hostname string `json:"hostname"` // the pod's hostname
	// ScratchDir is an empty directory for the container's root file
	// system: an overlay of the host's / with a tmpfs upper layer, so that
	// writes and new mount points never reach the host.
	ScratchDir string      `json:"scratchDir"`
	Mounts     []bindMount `json:"mounts"`
	Args       []string    `json:"args"`
	Env        []string    `json:"env"`
	WorkingDir string      `json:"workingDir"`
	// The identity the command runs as (runAsUser, runAsGroup, the
	// supplemental groups and fsGroup), and readOnlyRootFilesystem.
	User         int   `json:"user"`
	Group        int   `json:"group"`
	Groups       []int `json:"groups,omitempty"`
	ReadOnlyRoot bool  `json:"readOnlyRoot,omitempty"`
}

// bindMount makes a host path visible at Target inside the container.
type bindMount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readOnly"`
}

// startReportFD is the pipe on which container-init reports to the agent:
// an error message when it fails, or nothing when the exec closes it.
const startReportFD = 3

func runContainerInit(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("usage: %s SPEC.json (started by the node agent)", containerInitCommand)
	}
	unix.CloseOnExec(startReportFD)
	report := os.NewFile(startReportFD, "start-report")
	err := initAndExec(args[0]) // returns only when it failed
	if report != nil {
		fmt.Fprint(report, err)
	}
	return err
}

func initAndExec(specPath string) error {
	data, err := os.ReadFile(specPath)
	if err != nil {
		return err
	}
	var spec containerSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		return fmt.Errorf("reading %s: %w", specPath, err)
	}
	// setns and exec must happen on the same OS thread.
	runtime.LockOSThread()
	if err := enterPodNetwork(spec.Netns); err != nil {
		return err
	}
	if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
		return fmt.Errorf("setting the hostname: %w", err)
	}
	if err := buildRootfs(spec); err != nil {
		return err
	}
	return execCommand(spec)
}

func enterPodNetwork(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the pod's network namespace: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("joining the pod's network namespace: %w", err)
	}
	return nil
}

// buildRootfs assembles the container's root and chroots into it.
func buildRootfs(spec containerSpec) error {
	// Nothing below may propagate back to the host's mount table.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making mounts private: %w", err)
	}
	scratch := spec.ScratchDir
	if err := unix.Mount("tmpfs", scratch, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("mounting the scratch tmpfs: %w", err)
	}
	upper, work, root := filepath.Join(scratch, "upper"), filepath.Join(scratch, "work"), filepath.Join(scratch, "root")
	if err := mkdirs(upper, work, root); err != nil {
		return err
	}
	opts := fmt.Sprintf("lowerdir=/,upperdir=%s,workdir=%s", upper, work)
	if err := unix.Mount("overlay", root, "overlay", 0, opts); err != nil {
		return fmt.Errorf("mounting the root overlay: %w", err)
	}
	for _, dir := range []string{"/proc", "/sys", "/dev"} {
		if err := unix.Mount(dir, filepath.Join(root, dir), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("binding %s: %w", dir, err)
		}
	}
	for _, dir := range []string{"/tmp", "/run"} {
		if err := unix.Mount("tmpfs", filepath.Join(root, dir), "tmpfs", 0, "mode=1777"); err != nil {
			return fmt.Errorf("mounting %s: %w", dir, err)
		}
	}
	// Parents before children, as container runtimes mount them, so that
	// a volume can be mounted inside another.
	sort.SliceStable(spec.Mounts, func(i, j int) bool {
		return strings.Count(filepath.Clean(spec.Mounts[i].Target), "/") < strings.Count(filepath.Clean(spec.Mounts[j].Target), "/")
	})
	covered := map[string]bool{}
	for _, m := range spec.Mounts {
		target, err := bindInto(root, m)
		if err != nil {
			return err
		}
		covered[target] = true
	}
	if spec.ReadOnlyRoot {
		// The root and its scratch directories, unless a volume covers
		// them: volumes keep their own mode.
		for _, dir := range []string{"/", "/tmp", "/run"} {
			if covered[filepath.Join(root, dir)] {
				continue
			}
			flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY)
			if err := unix.Mount("", filepath.Join(root, dir), "", flags, ""); err != nil {
				return fmt.Errorf("making %s read-only: %w", dir, err)
			}
		}
	}
	if err := unix.Chroot(root); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	wd := spec.WorkingDir
	if wd == "" {
		wd = "/"
	}
	if err := os.MkdirAll(wd, 0o755); err != nil {
		return err
	}
	return os.Chdir(wd)
}

// bindInto bind-mounts m.Source at m.Target below root, creating the mount
// point as a directory or a file to match the source, and returns the
// mount point's path on the host.
func bindInto(root string, m bindMount) (string, error) {
	target, err := resolveInRoot(root, m.Target)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(m.Source)
	if err != nil {
		return "", fmt.Errorf("volume source for %s: %w", m.Target, err)
	}
	if st.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
		var f *os.File
		if f, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			f.Close()
		}
	}
	if err != nil {
		return "", fmt.Errorf("creating mount point %s: %w", m.Target, err)
	}
	if err := unix.Mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return "", fmt.Errorf("mounting %s at %s: %w", m.Source, m.Target, err)
	}
	if m.ReadOnly {
		flags := uintptr(unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_REC)
		if err := unix.Mount("", target, "", flags, ""); err != nil {
			return "", fmt.Errorf("making %s read-only: %w", m.Target, err)
		}
	}
	return target, nil
}

// resolveInRoot resolves path below root, following symlinks as if root
// were "/" (on Debian /var/run is a symlink to /run, and it must not lead
// out to the host's /run).
func resolveInRoot(root, path string) (string, error) {
	resolved := "/"
	rest := strings.Split(filepath.Clean("/"+path), "/")
	for hops := 0; len(rest) > 0; {
		part := rest[0]
		rest = rest[1:]
		if part == "" || part == "." {
			continue
		}
		next := filepath.Join(resolved, part)
		link, err := os.Readlink(filepath.Join(root, next))
		if err != nil { // not a symlink, or not there yet
			resolved = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("too many symlinks in %s", path)
		}
		if !filepath.IsAbs(link) {
			link = filepath.Join(resolved, link)
		}
		resolved = "/"
		rest = append(strings.Split(filepath.Clean(link), "/"), rest...)
	}
	return filepath.Join(root, resolved), nil
}

// execCommand replaces container-init with the container's command, looked
// up in the container's PATH like a container runtime does.
func execCommand(spec containerSpec) error {
	if len(spec.Args) == 0 {
		return fmt.Errorf("the container has no command: the licenseha image has no entrypoint, set command")
	}
	path := spec.Args[0]
	if !strings.Contains(path, "/") {
		os.Setenv("PATH", lookupEnv(spec.Env, "PATH"))
		resolved, err := exec.LookPath(path)
		if err != nil {
			return fmt.Errorf("executable %q not found in the container's PATH", path)
		}
		path = resolved
	}
	if err := dropPrivileges(spec); err != nil {
		return err
	}
	if err := syscall.Exec(path, spec.Args, spec.Env); err != nil {
		return fmt.Errorf("exec %s: %w", path, err)
	}
	return nil
}

func dropPrivileges(spec containerSpec) error {
	if spec.User == 0 && spec.Group == 0 && len(spec.Groups) == 0 {
		return nil
	}
	if err := syscall.Setgroups(spec.Groups); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setgid(spec.Group); err != nil {
		return fmt.Errorf("setgid: %w", err)
	}
	if err := syscall.Setuid(spec.User); err != nil {
		return fmt.Errorf("setuid: %w", err)
	}
	return nil
}

func lookupEnv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], name+"="); ok {
			return v
		}
	}
	return ""
}
