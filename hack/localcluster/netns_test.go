package main

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// TestPinnedNamespaceIsNotReused: the kernel hands a freed namespace's
// number to the next namespace created, so a container whose namespace was
// not pinned could be mistaken, once it exited, for one that just started.
// A pinned namespace keeps its number until it is released.
func TestPinnedNamespaceIsNotReused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("creating mount namespaces needs root")
	}
	start := func() *exec.Cmd {
		cmd := exec.Command("sleep", "0.05")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	for range 5 {
		first := start()
		id, pin := pinNamespace(fmt.Sprintf("/proc/%d/ns/mnt", first.Process.Pid))
		if pin == nil {
			t.Fatal("could not pin the namespace of a running process")
		}
		if other, _ := namespaceOf(fmt.Sprintf("/proc/%d/ns/mnt", first.Process.Pid)); other != id {
			t.Fatalf("pinned identity %v, the process is in %v", id, other)
		}
		_ = first.Wait()
		second := start()
		next, _ := namespaceOf(fmt.Sprintf("/proc/%d/ns/mnt", second.Process.Pid))
		if next == id {
			t.Fatalf("a new namespace got the number %v of a pinned one", id)
		}
		if got := processesIn("mnt", id); len(got) != 0 {
			t.Fatalf("processes %v found in the exited container's namespace", got)
		}
		_ = pin.Close()
		_ = second.Wait()
	}
}
