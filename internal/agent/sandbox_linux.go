package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Landlock file-system rights by ABI version. The sandbox handles every
// right the kernel knows and grants all of them everywhere but beneath the
// hidden directory, so the server loses nothing else.
const (
	llFileRights  = unix.LANDLOCK_ACCESS_FS_EXECUTE | unix.LANDLOCK_ACCESS_FS_WRITE_FILE | unix.LANDLOCK_ACCESS_FS_READ_FILE
	llDirRightsV1 = llFileRights | unix.LANDLOCK_ACCESS_FS_READ_DIR | unix.LANDLOCK_ACCESS_FS_REMOVE_DIR |
		unix.LANDLOCK_ACCESS_FS_REMOVE_FILE | unix.LANDLOCK_ACCESS_FS_MAKE_CHAR | unix.LANDLOCK_ACCESS_FS_MAKE_DIR |
		unix.LANDLOCK_ACCESS_FS_MAKE_REG | unix.LANDLOCK_ACCESS_FS_MAKE_SOCK | unix.LANDLOCK_ACCESS_FS_MAKE_FIFO |
		unix.LANDLOCK_ACCESS_FS_MAKE_BLOCK | unix.LANDLOCK_ACCESS_FS_MAKE_SYM
)

// landlockABI returns the kernel's Landlock ABI version, or 0 with the
// reason when Landlock cannot be used.
func landlockABI() (int, error) {
	v, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, 0, 0, unix.LANDLOCK_CREATE_RULESET_VERSION)
	if errno != 0 {
		switch errno {
		case unix.ENOSYS:
			return 0, errors.New("the kernel has no Landlock (Linux 5.13 or newer needed)")
		case unix.EOPNOTSUPP:
			return 0, errors.New("Landlock is disabled on this node (not in the kernel's lsm= list)")
		case unix.EPERM:
			return 0, errors.New("the container's seccomp profile refuses the Landlock system calls")
		}
		return 0, fmt.Errorf("Landlock unavailable: %v", errno)
	}
	return int(v), nil
}

// rights returns the handled rights for directories and for files.
func rights(abi int) (dir, file uint64) {
	dir, file = llDirRightsV1, llFileRights
	if abi >= 2 {
		dir |= unix.LANDLOCK_ACCESS_FS_REFER
	}
	if abi >= 3 {
		dir |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
		file |= unix.LANDLOCK_ACCESS_FS_TRUNCATE
	}
	if abi >= 5 {
		dir |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
		file |= unix.LANDLOCK_ACCESS_FS_IOCTL_DEV
	}
	return dir, file
}

// hideRuleset builds a Landlock ruleset that allows everything except what
// lies beneath hide: Landlock only allows, so it grants each directory
// entry beside the path from / to hide, level by level. Symbolic links get
// no rule: what they point to is checked where it really is. It returns the
// ruleset's file descriptor.
func hideRuleset(hide string, abi int) (int, error) {
	real, err := filepath.EvalSymlinks(hide)
	if err != nil {
		return -1, fmt.Errorf("resolving %s: %w", hide, err)
	}
	if real == "/" || !filepath.IsAbs(real) {
		return -1, fmt.Errorf("cannot hide %q", real)
	}
	dirRights, fileRights := rights(abi)
	attr := unix.LandlockRulesetAttr{Access_fs: dirRights}
	fd, _, errno := unix.Syscall(unix.SYS_LANDLOCK_CREATE_RULESET, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr), 0)
	if errno != 0 {
		return -1, fmt.Errorf("landlock_create_ruleset: %w", errno)
	}
	ruleset := int(fd)
	fail := func(err error) (int, error) {
		unix.Close(ruleset)
		return -1, err
	}
	parent := "/"
	for _, next := range strings.Split(strings.TrimPrefix(real, "/"), "/") {
		entries, err := os.ReadDir(parent)
		if err != nil {
			return fail(fmt.Errorf("listing %s: %w", parent, err))
		}
		for _, e := range entries {
			if e.Name() == next {
				continue
			}
			if err := allowBeneath(ruleset, filepath.Join(parent, e.Name()), dirRights, fileRights); err != nil {
				return fail(err)
			}
		}
		parent = filepath.Join(parent, next)
	}
	return ruleset, nil
}

// allowBeneath grants every right on path (a directory: everything beneath).
func allowBeneath(ruleset int, path string, dirRights, fileRights uint64) error {
	fd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil // gone since it was listed
		}
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", path, err)
	}
	access := fileRights
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		return nil
	case unix.S_IFDIR:
		access = dirRights
	}
	rule := unix.LandlockPathBeneathAttr{Allowed_access: access, Parent_fd: int32(fd)}
	if _, _, errno := unix.Syscall6(unix.SYS_LANDLOCK_ADD_RULE, uintptr(ruleset), unix.LANDLOCK_RULE_PATH_BENEATH,
		uintptr(unsafe.Pointer(&rule)), 0, 0, 0); errno != 0 {
		return fmt.Errorf("landlock_add_rule %s: %w", path, errno)
	}
	return nil
}

// hideFromSelf restricts the calling thread, and whatever it execs, to
// everything but hide. The caller must hold the thread (LockOSThread).
func hideFromSelf(hide string) (sandboxStatus, error) {
	abi, err := landlockABI()
	if err != nil {
		return sandboxStatus{detail: err.Error()}, nil
	}
	if abi < 2 {
		// ABI 1 refuses every rename or link across directories: that would
		// break servers that write a file and move it into place.
		return sandboxStatus{detail: fmt.Sprintf("Landlock ABI %d is too old (2, Linux 5.19, needed)", abi)}, nil
	}
	if _, err := os.Stat(hide); errors.Is(err, os.ErrNotExist) {
		return sandboxStatus{hidden: true, detail: "(no token mounted)"}, nil
	}
	ruleset, err := hideRuleset(hide, abi)
	if err != nil {
		return sandboxStatus{}, err
	}
	defer unix.Close(ruleset)
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return sandboxStatus{}, fmt.Errorf("setting no_new_privs: %w", err)
	}
	if _, _, errno := unix.Syscall(unix.SYS_LANDLOCK_RESTRICT_SELF, uintptr(ruleset), 0, 0); errno != 0 {
		return sandboxStatus{}, fmt.Errorf("landlock_restrict_self: %w", errno)
	}
	return sandboxStatus{hidden: true, detail: fmt.Sprintf("(Landlock ABI %d)", abi)}, nil
}

// SandboxExec is `agent sandbox`: it hides the directory hide from itself,
// writes the outcome as one line to status (then closes it) and execs argv.
// When Landlock cannot be used, or building the sandbox fails, it says so
// and execs argv unrestricted: a license server that cannot start is an
// outage, one that could read the token is a risk the agent reports
// (log, licenseha_agent_server_token_hidden 0), never hides.
func SandboxExec(hide string, status *os.File, argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command given after --")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return err
	}
	// Landlock restricts the calling thread; execve runs on it too.
	runtime.LockOSThread()
	st, err := hideFromSelf(hide)
	if err != nil {
		st = sandboxStatus{detail: "building the sandbox failed: " + err.Error()}
	}
	if status != nil {
		fmt.Fprintln(status, st.String())
		status.Close()
	}
	return syscall.Exec(path, argv, os.Environ())
}
