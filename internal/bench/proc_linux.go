package bench

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
)

// peakRSS returns VmHWM (peak resident set size) of process pid in bytes;
// pid 0 means this process. 0 when unknown.
func peakRSS(pid int) int64 {
	p := "/proc/self/status"
	if pid != 0 {
		p = "/proc/" + strconv.Itoa(pid) + "/status"
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			f := strings.Fields(v) // "123456 kB"
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10
				}
			}
		}
	}
	return 0
}

// resetPeakRSS resets this process's VmHWM to its current RSS (Linux 4.0+:
// writing 5 to /proc/self/clear_refs); it reports whether that worked.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// setParentDeath kills the child when this process dies.
func setParentDeath(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
