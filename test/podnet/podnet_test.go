package podnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// The main goroutine stays on the process's main thread, so that a test
// can run code there through onMain.
func init() { runtime.LockOSThread() }

var onMain = make(chan func())

func TestMain(m *testing.M) {
	done := make(chan int)
	go func() { done <- m.Run() }()
	for {
		select {
		case f := <-onMain:
			f()
		case code := <-done:
			os.Exit(code)
		}
	}
}

// testNamespace creates a network namespace with its loopback up (as a
// pod's) and returns its path.
func testNamespace(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("creating network namespaces needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (Debian package iproute2)")
	}
	name := fmt.Sprintf("licenseha-podnet-test-%d", os.Getpid())
	for _, args := range [][]string{{"netns", "add", name}, {"-n", name, "link", "set", "lo", "up"}} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

func processNetns(t *testing.T) string {
	t.Helper()
	ns, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// hostListener listens on the host's loopback; from inside the namespace
// that address has nobody listening.
func hostListener(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String()
}

func TestDialsFromInsideTheNamespace(t *testing.T) {
	path := testNamespace(t)
	addr := hostListener(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("the host cannot reach its own listener: %v", err)
	}
	c.Close()
	_, err = Dial(ctx, path, "tcp", addr)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dialling %s inside the namespace: got %v, want connection refused (nobody listens there)", addr, err)
	}
	if _, err := Dial(ctx, "/run/netns/does-not-exist", "tcp", addr); err == nil {
		t.Fatal("dialling from a namespace that does not exist succeeded")
	}
}

// A dial that runs on the process's main thread (whose namespace is what
// /proc/PID/ns/net shows for the whole process) leaves it where it was.
func TestProcessStaysInItsNamespace(t *testing.T) {
	path := testNamespace(t)
	addr := hostListener(t)
	before := processNetns(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	errc := make(chan error, 1)
	onMain <- func() {
		_, moved, err := dialLocked(ctx, path, "tcp", addr)
		if moved {
			err = errors.New("dialLocked moved the main thread")
		}
		errc <- err
	}
	if err := <-errc; !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial from the main thread: got %v, want connection refused inside the namespace", err)
	}
	if after := processNetns(t); after != before {
		t.Fatalf("the process moved from %s to %s", before, after)
	}
}
