package bench

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/agentry/agentry/internal/kit/awstest"
)

// cpuSample is the machine's and this process's CPU time so far, in clock
// ticks, from /proc (Linux only).
type cpuSample struct {
	total, busy, steal int64 // all CPUs: every state, running, stolen by the hypervisor
	self               int64 // this process and its waited-for children
}

func readCPU() (cpuSample, error) {
	var c cpuSample
	stat, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c, err
	}
	line, _, _ := strings.Cut(string(stat), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return c, errors.New("/proc/stat: no cpu line")
	}
	v := make([]int64, 8) // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseInt(f[i+1], 10, 64); err != nil {
			return c, err
		}
	}
	for _, x := range v {
		c.total += x
	}
	c.busy = v[0] + v[1] + v[2] + v[5] + v[6]
	c.steal = v[7]
	// This process and its waited-for children (utime, stime, cutime,
	// cstime), plus the children still running, which cutime does not
	// count yet. A child reaped between the two reads has no stat file
	// left and is counted once, in cutime.
	self, err := procTicks("self", 4)
	if err != nil {
		return c, err
	}
	c.self = self
	liveChildren.Range(func(pid, _ any) bool {
		if n, err := procTicks(strconv.Itoa(pid.(int)), 2); err == nil {
			c.self += n
		}
		return true
	})
	// moto serves the AWS sections' requests: part of the run too.
	if pid := awstest.EmulatorPID(); pid > 0 {
		if n, err := procTicks(strconv.Itoa(pid), 2); err == nil {
			c.self += n
		}
	}
	return c, nil
}

// liveChildren holds the pids of the child processes not yet reaped: the
// servers under test and the Lambda functions.
var liveChildren sync.Map

// procTicks sums the first n of utime, stime, cutime and cstime of
// /proc/<pid>/stat.
func procTicks(pid string, n int) (int64, error) {
	stat, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, err
	}
	// The fields after the command name (which may hold spaces) in
	// parentheses: utime, stime, cutime and cstime are the 12th to 15th.
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return 0, errors.New("/proc/" + pid + "/stat: unexpected format")
	}
	g := strings.Fields(string(stat)[i+1:])
	if len(g) < 15 {
		return 0, errors.New("/proc/" + pid + "/stat: unexpected format")
	}
	var sum int64
	for _, s := range g[11 : 11+n] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// cpuShares records how the machine's CPU time was shared since start —
// this run (with its child gateways), other processes, time the
// hypervisor stole — under settings suffixed with scope ("" for the whole
// run). When others and steal exceed a tenth the figures are noisy, and a
// note says so.
func (r *run) cpuShares(start cpuSample, scope string) {
	if start.total == 0 {
		return
	}
	end, err := readCPU()
	if err != nil || end.total <= start.total {
		return
	}
	total := float64(end.total - start.total)
	self := float64(end.self-start.self) / total * 100
	others := max(float64(end.busy-start.busy)/total*100-self, 0)
	steal := float64(end.steal-start.steal) / total * 100
	suffix, what := "", "the run"
	if scope != "" {
		suffix, what = "_"+scope, scope
	}
	r.rep.Settings["cpu_self_pct"+suffix] = fmt.Sprintf("%.0f", self)
	r.rep.Settings["cpu_others_pct"+suffix] = fmt.Sprintf("%.0f", others)
	r.rep.Settings["cpu_steal_pct"+suffix] = fmt.Sprintf("%.0f", steal)
	if others+steal > 10 {
		r.rep.Note("during %s other processes used %.0f%% and the hypervisor stole %.0f%% of the machine's CPU time (this run: %.0f%%): absolute figures are depressed, ratios less so", what, others, steal, self)
	}
}
