//go:build !linux

package agent

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// SandboxExec runs argv without a sandbox: only Linux has Landlock.
func SandboxExec(_ string, status *os.File, argv []string) error {
	if len(argv) == 0 {
		return errors.New("no command given after --")
	}
	if status != nil {
		fmt.Fprintln(status, "exposed no Landlock outside Linux")
		status.Close()
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	return cmd.Run()
}
