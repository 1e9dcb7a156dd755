package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// containerState is what the agent knows about one container; the pod
// worker's mutex guards it.
type containerState struct {
	spec         *corev1.Container
	init         bool
	restartCount int32
	containerID  string // set when the container first starts
	state        corev1.ContainerState
	lastState    corev1.ContainerState
	ready        bool
	started      bool
	proc         *process // nil when not running
}

// process is one run of a container.
type process struct {
	cmd   *exec.Cmd
	mntNS nsID // the container's own mount namespace
	// mntPin holds the mount namespace open until the container's processes
	// are gone: a freed namespace's inode is reused by the next one, and
	// killing "the processes of mntNS" would then kill a container that
	// just started (in this or another pod).
	mntPin *os.File
	pinMu  sync.Mutex
	env    []string
	done   chan struct{}
	exit   exitInfo
}

type exitInfo struct {
	code   int32
	signal string
}

// createError is a container that could not be started; reason is the
// kubelet's waiting reason for it.
type createError struct {
	reason string
	err    error
}

func (e createError) Error() string { return e.err.Error() }

// startContainer launches a container through "localcluster container-init"
// in new mount and UTS namespaces; container-init joins the pod's network
// namespace. It returns once the container's command runs.
func (w *podWorker) startContainer(ctx context.Context, c *corev1.Container) (*process, error) {
	spec, err := w.containerSpec(ctx, c)
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(w.dir, "containers", c.Name)
	logDir := w.a.l.podLogDir(w.bound.Namespace, w.bound.Name)
	if err := mkdirs(spec.ScratchDir, logDir); err != nil {
		return nil, err
	}
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	specPath := filepath.Join(dir, "spec.json")
	if err := os.WriteFile(specPath, data, 0o600); err != nil {
		return nil, err
	}
	logFile, err := os.OpenFile(filepath.Join(logDir, c.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "%s%q at %s\n", runStartMarker, spec.Args, time.Now().UTC().Format(time.RFC3339))
	p, err := w.launch(specPath, logFile, spec.Env)
	if err != nil {
		// The pod status says why too; the log keeps it for later.
		fmt.Fprintf(logFile, "--- localcluster: the container did not start: %v\n", err)
	}
	return p, err
}

// containerSpec resolves what container-init needs: image, environment,
// command line, mounts and identity.
func (w *podWorker) containerSpec(ctx context.Context, c *corev1.Container) (containerSpec, error) {
	if !isProjectImage(c.Image) {
		return containerSpec{}, createError{"ErrImagePull", imageError{c.Image}}
	}
	if len(c.Command) == 0 {
		return containerSpec{}, createError{"CreateContainerError", fmt.Errorf("container %s has no command: the local cluster does not know image entrypoints, set command (e.g. [%s/agent])", c.Name, imageBinDir)}
	}
	pod := w.currentPod()
	env, err := containerEnv(ctx, w.a.cs, pod, c, w.hostname)
	if err != nil {
		return containerSpec{}, createError{"CreateContainerConfigError", err}
	}
	vars := envMap(env)
	var args []string
	for _, a := range append(append([]string{}, c.Command...), c.Args...) {
		args = append(args, expand(a, vars))
	}
	mounts, err := w.containerMounts(c)
	if err != nil {
		return containerSpec{}, createError{"CreateContainerConfigError", err}
	}
	spec := containerSpec{
		Netns: w.sandbox.netnsPath(), Hostname: w.hostname,
		ScratchDir: filepath.Join(w.dir, "containers", c.Name, "rootfs"),
		Mounts:     mounts, Args: args, Env: env, WorkingDir: c.WorkingDir,
	}
	applySecurityContext(&spec, pod.Spec.SecurityContext, c.SecurityContext)
	return spec, nil
}

// launch starts container-init and waits until it either replaced itself
// with the command (the report pipe closes empty) or failed (it reports why).
func (w *podWorker) launch(specPath string, logFile *os.File, env []string) (*process, error) {
	reportR, reportW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer reportR.Close()
	cmd := exec.Command(w.a.exe, containerInitCommand, specPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.ExtraFiles = []*os.File{reportW} // startReportFD
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWUTS, Setpgid: true}
	err = cmd.Start()
	reportW.Close()
	if err != nil {
		return nil, createError{"RunContainerError", err}
	}
	p := &process{cmd: cmd, env: env, done: make(chan struct{})}
	p.mntNS, p.mntPin = pinNamespace(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid))
	go p.wait()
	if msg, _ := io.ReadAll(reportR); len(msg) > 0 {
		<-p.done
		return nil, createError{"StartError", errors.New(string(msg))}
	}
	return p, nil
}

// containerMounts lists the bind mounts of a container: the image's
// binaries, /etc/hosts, /etc/hostname, /etc/resolv.conf, and the volume
// mounts.
func (w *podWorker) containerMounts(c *corev1.Container) ([]bindMount, error) {
	mounts := []bindMount{
		{Source: w.a.binDir, Target: imageBinDir, ReadOnly: true},
		{Source: filepath.Join(w.dir, "etc", "hosts"), Target: "/etc/hosts"},
		{Source: filepath.Join(w.dir, "etc", "hostname"), Target: "/etc/hostname"},
	}
	if w.bound.Spec.DNSPolicy != corev1.DNSDefault { // Default: the host's resolv.conf
		mounts = append(mounts, bindMount{Source: filepath.Join(w.dir, "etc", "resolv.conf"), Target: "/etc/resolv.conf"})
	}
	for _, vm := range c.VolumeMounts {
		src, ok := w.volumes[vm.Name]
		if !ok {
			return nil, fmt.Errorf("volume mount %q: no such volume", vm.Name)
		}
		if vm.SubPath != "" {
			// Like the kubelet, a subPath pins the resolved file: it
			// does not follow later updates of the volume.
			resolved, err := filepath.EvalSymlinks(filepath.Join(src, vm.SubPath))
			if err != nil {
				if err := os.MkdirAll(filepath.Join(src, vm.SubPath), 0o777); err != nil {
					return nil, err
				}
				resolved = filepath.Join(src, vm.SubPath)
			}
			src = resolved
		}
		mounts = append(mounts, bindMount{Source: src, Target: vm.MountPath, ReadOnly: vm.ReadOnly || w.readOnlyVolume(vm.Name)})
	}
	return mounts, nil
}

// readOnlyVolume: configMap, secret, downwardAPI and projected volumes are
// always read-only, as in the kubelet.
func (w *podWorker) readOnlyVolume(name string) bool {
	for _, v := range w.currentPod().Spec.Volumes {
		if v.Name == name {
			return v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil || v.Projected != nil
		}
	}
	return false
}

// applySecurityContext takes over the user, groups and read-only root of
// the container, falling back to the pod's settings. Other fields
// (capabilities, seccomp, privilege escalation) are not enforced.
func applySecurityContext(spec *containerSpec, pod *corev1.PodSecurityContext, c *corev1.SecurityContext) {
	if pod != nil {
		spec.User, spec.Group = intOr(pod.RunAsUser, 0), intOr(pod.RunAsGroup, 0)
		for _, g := range pod.SupplementalGroups {
			spec.Groups = append(spec.Groups, int(g))
		}
		if pod.FSGroup != nil {
			spec.Groups = append(spec.Groups, int(*pod.FSGroup))
		}
	}
	if c != nil {
		spec.User, spec.Group = intOr(c.RunAsUser, spec.User), intOr(c.RunAsGroup, spec.Group)
		spec.ReadOnlyRoot = c.ReadOnlyRootFilesystem != nil && *c.ReadOnlyRootFilesystem
	}
}

func intOr(v *int64, def int) int {
	if v == nil {
		return def
	}
	return int(*v)
}

func (p *process) wait() {
	_ = p.cmd.Wait() // the exit status is all that matters
	if st, ok := p.cmd.ProcessState.Sys().(syscall.WaitStatus); ok && st.Signaled() {
		p.exit = exitInfo{code: 128 + int32(st.Signal()), signal: st.Signal().String()}
	} else {
		p.exit = exitInfo{code: int32(p.cmd.ProcessState.ExitCode())}
	}
	// Whatever the container started dies with it, as in a container
	// runtime that kills the container's cgroup.
	p.killAll(true)
	close(p.done)
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// killAll SIGKILLs every process of the container (its mount namespace),
// and with unpin lets the namespace go.
func (p *process) killAll(unpin bool) {
	p.pinMu.Lock()
	defer p.pinMu.Unlock()
	if p.mntPin == nil {
		return
	}
	killNamespace("mnt", p.mntNS)
	if unpin {
		_ = p.mntPin.Close()
		p.mntPin = nil
	}
}

// stop sends SIGTERM to the container's main process and SIGKILL to all of
// its processes once grace has passed; it returns when the container exited.
func (p *process) stop(grace time.Duration) {
	_ = syscall.Kill(p.pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.killAll(false)
		<-p.done
	}
}
