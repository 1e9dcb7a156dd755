package main

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// nsID identifies a namespace by the device and inode of its nsfs file.
type nsID struct{ dev, ino uint64 }

func namespaceOf(path string) (nsID, bool) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return nsID{}, false
	}
	return nsID{uint64(st.Dev), st.Ino}, true
}

// pinNamespace opens a namespace file and returns its identity with the
// open file, which keeps the namespace (and so its identity) from being
// freed and reused until it is closed. It returns nil when the namespace
// is already gone.
func pinNamespace(path string) (nsID, *os.File) {
	f, err := os.Open(path)
	if err != nil {
		return nsID{}, nil
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nsID{}, nil
	}
	return nsID{uint64(st.Dev), st.Ino}, f
}

// processesIn lists the processes whose namespace of the given kind ("net",
// "mnt") is id. A pod's processes are those in its network namespace, a
// container's those in its mount namespace: children included, whatever
// process group they moved to.
func processesIn(kind string, id nsID) []int {
	self := os.Getpid()
	var pids []int
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid == self {
			continue
		}
		if other, ok := namespaceOf(filepath.Join(d, "ns", kind)); ok && other == id {
			pids = append(pids, pid)
		}
	}
	return pids
}

// signalNamespace sends sig to every process of a namespace and returns them.
func signalNamespace(kind string, id nsID, sig syscall.Signal) []int {
	pids := processesIn(kind, id)
	for _, pid := range pids {
		_ = syscall.Kill(pid, sig)
	}
	return pids
}

// killNamespace SIGKILLs the processes of a namespace (resuming stopped ones
// so that they can die) and waits briefly until they are gone.
func killNamespace(kind string, id nsID) {
	for i := 0; i < 100; i++ {
		if len(signalNamespace(kind, id, syscall.SIGKILL)) == 0 {
			return
		}
		signalNamespace(kind, id, syscall.SIGCONT)
		time.Sleep(20 * time.Millisecond)
	}
}

// killNetnsProcesses kills every process of the network namespace bound at path.
func killNetnsProcesses(path string) {
	if id, ok := namespaceOf(path); ok {
		killNamespace("net", id)
	}
}
