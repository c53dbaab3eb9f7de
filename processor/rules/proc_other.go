//go:build !unix

package rules

import "os/exec"

// setProcessGroup is a no-op where process groups do not exist; cancellation kills the process.
func setProcessGroup(*exec.Cmd) {}

// killGroup kills the process.
func killGroup(cmd *exec.Cmd) {
	if cmd.Process != nil {
		_ = cmd.Process.Kill()
	}
}
