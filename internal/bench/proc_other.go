//go:build !linux

package bench

import "os/exec"

func peakRSS(pid int) int64 { return 0 }

func resetPeakRSS() bool { return false }

func setParentDeath(cmd *exec.Cmd) {}
