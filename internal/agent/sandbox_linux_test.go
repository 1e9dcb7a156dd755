package agent

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
)

// The test binary plays three parts: the tests; `agent sandbox` when its
// first argument is "sandbox"; and a stand-in license server when it is
// "licenseha-probe", which tries what LICENSEHA_PROBE lists (op:path, "|"
// separated) and writes one line per attempt to LICENSEHA_PROBE_OUT.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "sandbox":
			if err := SandboxMain(os.Args[2:]); err != nil {
				fmt.Fprintln(os.Stderr, "sandbox:", err)
				os.Exit(127)
			}
			os.Exit(0)
		case "licenseha-probe":
			probe()
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

func probe() {
	var out strings.Builder
	for _, step := range strings.Split(os.Getenv("LICENSEHA_PROBE"), "|") {
		op, arg, _ := strings.Cut(step, ":")
		var err error
		switch op {
		case "read":
			_, err = os.ReadFile(arg)
		case "list":
			_, err = os.ReadDir(arg)
		case "write":
			err = os.WriteFile(arg, []byte("x"), 0o600)
		case "move":
			from, to, _ := strings.Cut(arg, ">")
			err = os.Rename(from, to)
		}
		result := "ok"
		if errors.Is(err, fs.ErrPermission) {
			result = "denied"
		} else if err != nil {
			result = "error " + err.Error()
		}
		fmt.Fprintf(&out, "%s %s\n", step, result)
	}
	_ = os.WriteFile(os.Getenv("LICENSEHA_PROBE_OUT"), []byte(out.String()), 0o600)
}

func requireLandlock(t *testing.T) {
	t.Helper()
	abi, err := landlockABI()
	if err != nil || abi < 2 {
		t.Skipf("Landlock ABI 2 not available here (ABI %d, %v)", abi, err)
	}
}

// tree lays out a fake pod filesystem: a token directory like the kubelet's,
// another secret beside it, a data folder and a scratch folder.
func tree(t *testing.T) (root, tokenDir string) {
	t.Helper()
	root = t.TempDir()
	tokenDir = filepath.Join(root, "run", "secrets", "kubernetes.io", "serviceaccount")
	for dir, file := range map[string]string{
		tokenDir: "token",
		filepath.Join(root, "run", "secrets", "other"): "secret.txt",
		filepath.Join(root, "data"):                    "state.db",
		filepath.Join(root, "scratch"):                 "",
	} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if file != "" {
			if err := os.WriteFile(filepath.Join(dir, file), []byte("content"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	return root, tokenDir
}

func probeSteps(root, tokenDir string) (steps []string, want map[string]string) {
	token := filepath.Join(tokenDir, "token")
	want = map[string]string{
		"read:" + token:    "denied",
		"list:" + tokenDir: "denied",
		// The agent's (this test's) view of the same file, through /proc.
		fmt.Sprintf("read:/proc/%d/root%s", os.Getpid(), token):                "denied",
		"read:" + filepath.Join(root, "run", "secrets", "other", "secret.txt"): "ok",
		"read:" + filepath.Join(root, "data", "state.db"):                      "ok",
		"write:" + filepath.Join(root, "scratch", "new"):                       "ok",
		// A rename across directories (Landlock ABI 2, "refer").
		"move:" + filepath.Join(root, "scratch", "new") + ">" + filepath.Join(root, "data", "new"): "ok",
		"read:/proc/self/status": "ok",
	}
	// Order matters for write then move.
	steps = []string{
		"read:" + token, "list:" + tokenDir, fmt.Sprintf("read:/proc/%d/root%s", os.Getpid(), token),
		fmt.Sprintf("read:/proc/%d/environ", os.Getpid()),
		"read:" + filepath.Join(root, "run", "secrets", "other", "secret.txt"),
		"read:" + filepath.Join(root, "data", "state.db"),
		"write:" + filepath.Join(root, "scratch", "new"),
		"move:" + filepath.Join(root, "scratch", "new") + ">" + filepath.Join(root, "data", "new"),
		"read:/proc/self/status",
	}
	return steps, want
}

func checkProbe(t *testing.T, outFile string, want map[string]string) {
	t.Helper()
	data, err := os.ReadFile(outFile)
	if err != nil {
		t.Fatalf("the probe wrote nothing: %v", err)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(data)))
	for sc.Scan() {
		step, result, _ := strings.Cut(sc.Text(), " ")
		got[step] = result
	}
	for step, w := range want {
		if got[step] != w {
			t.Errorf("%s: %q, want %q", step, got[step], w)
		}
	}
}

func TestSandboxHidesTheTokenDirectory(t *testing.T) {
	requireLandlock(t)
	root, tokenDir := tree(t)
	steps, want := probeSteps(root, tokenDir)
	out := filepath.Join(t.TempDir(), "probe.out")

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "sandbox", "--hide="+tokenDir, "--status-fd=3", "--", os.Args[0], "licenseha-probe")
	cmd.Env = append(os.Environ(), "LICENSEHA_PROBE="+strings.Join(steps, "|"), "LICENSEHA_PROBE_OUT="+out)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	st, ok := readSandboxStatus(r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	if !ok || !st.hidden || !strings.Contains(st.detail, "Landlock ABI") {
		t.Errorf("status %q, want hidden", st)
	}
	checkProbe(t, out, want)

	// The agent itself still reads the token.
	if _, err := os.ReadFile(filepath.Join(tokenDir, "token")); err != nil {
		t.Errorf("the agent lost the token: %v", err)
	}
}

func TestSupervisorStartsTheServerWithoutTheToken(t *testing.T) {
	requireLandlock(t)
	root, tokenDir := tree(t)
	steps, want := probeSteps(root, tokenDir)
	out := filepath.Join(t.TempDir(), "probe.out")
	t.Setenv("LICENSEHA_PROBE", strings.Join(steps, "|"))
	t.Setenv("LICENSEHA_PROBE_OUT", out)

	var mu sync.Mutex
	var reports []string
	s := &Supervisor{Command: []string{os.Args[0], "licenseha-probe"}, Log: logr.Discard(), Hide: tokenDir,
		MinBackoff: time.Hour, OnSandbox: func(hidden bool, detail string) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, fmt.Sprint(hidden, " ", detail))
		}}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		t.Fatal("the probe did not finish")
	}
	checkProbe(t, out, want)
	waitFor(t, "the sandbox report", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reports) == 1
	})
	if !strings.HasPrefix(reports[0], "true (Landlock ABI") {
		t.Errorf("report %q, want hidden", reports[0])
	}
}

func TestSandboxStatus(t *testing.T) {
	r, w, _ := os.Pipe()
	fmt.Fprintln(w, sandboxStatus{detail: "the kernel has no Landlock"}.String())
	w.Close()
	if st, ok := readSandboxStatus(r); !ok || st.hidden || st.detail != "the kernel has no Landlock" {
		t.Errorf("status %+v, %v", st, ok)
	}
	// The helper was killed before it wrote anything (and so before it
	// could exec the server): nothing to report.
	r, w, _ = os.Pipe()
	w.Close()
	if st, ok := readSandboxStatus(r); ok {
		t.Errorf("no status read as %+v", st)
	}
}
