package executor

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// processID names the process holding a lease, so that a holder on this
// machine that no longer exists is recognised at once instead of after
// StaleAfter. A pid means something only on the machine and in the pid
// namespace that issued it, and only until it is reused: Host, Boot (the
// kernel's boot id) and PIDNS (the pid namespace) must all match ours, and
// Start (the process's start time in clock ticks since boot) tells a reused
// pid from the holder. Where these cannot be read (outside Linux), Boot is
// empty and a lease is only ever taken over when stale.
type processID struct {
	Host  string
	Boot  string
	PIDNS string
	PID   int
	Start uint64
}

var (
	selfOnce sync.Once
	selfID   processID
)

// currentProcess identifies this process.
func currentProcess() processID {
	selfOnce.Do(func() {
		host, _ := os.Hostname()
		selfID = processID{Host: host, PID: os.Getpid()}
		if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
			selfID.Boot = strings.TrimSpace(string(b))
		}
		if ns, err := os.Readlink("/proc/self/ns/pid"); err == nil {
			selfID.PIDNS = ns
		}
		if st, ok := procStat(selfID.PID); ok {
			selfID.Start = st.start
		}
	})
	return selfID
}

// sameMachine reports whether a lease's holder ran where our pids mean the
// same thing.
func (p processID) sameMachine(l *Lease) bool {
	return l.PID > 0 && p.Boot != "" && l.Host == p.Host && l.Boot == p.Boot && l.PIDNS == p.PIDNS
}

// holderGone reports whether the lease's holder is a process on this
// machine that no longer runs (exited, killed, a zombie, or its pid now
// belongs to a younger process), or this very process when it does not
// hold that lease (one whose release failed).
func (p processID) holderGone(l *Lease) bool {
	if !p.sameMachine(l) {
		return false
	}
	if l.PID == p.PID && l.Start == p.Start && p.PID == os.Getpid() {
		return !holding(l.LeaseID)
	}
	if err := syscall.Kill(l.PID, 0); err == syscall.ESRCH {
		return true
	}
	st, ok := procStat(l.PID)
	if !ok {
		// EPERM above (another user's live process) or no procfs: alive
		// for all we can tell.
		return false
	}
	return st.state == 'Z' || st.state == 'X' || (l.Start != 0 && st.start != l.Start)
}

type stat struct {
	state byte
	start uint64
}

// procStat reads a process's state and start time from /proc/PID/stat.
func procStat(pid int) (stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	// "pid (comm) state ppid …": comm may hold spaces and parentheses.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return stat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 || len(f[0]) != 1 {
		return stat{}, false
	}
	start, err := strconv.ParseUint(f[19], 10, 64) // field 22, starttime
	if err != nil {
		return stat{}, false
	}
	return stat{state: f[0][0], start: start}, true
}

// held are the lease ids this process holds now.
var held sync.Map

func holding(id string) bool {
	_, ok := held.Load(id)
	return ok
}
