package slurmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// jobUID is the unprivileged user jobs run as: nobody, whom every test machine has.
const jobUID, jobGID = 65534, 65534

// safePath is the PATH of the daemons and of the jobs, after the stand-in apptainer.
const safePath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// cluster is a one-node Slurm started for a test: munged, slurmctld and slurmd, each
// stopped by its PID when the test ends. See ../../../../shared/slurm-lab.md.
type cluster struct {
	t    *testing.T
	dir  string
	node string
	conf string
	// plugstack is the plugin stack file; slurmstepd reads it for every step.
	plugstack string
	// path is the PATH of client commands and so of the jobs.
	path    string
	daemons []*exec.Cmd
}

// clusterOptions are the slurm.conf settings a test adds.
type clusterOptions struct {
	// extra lines for slurm.conf, such as PrologSlurmctld=...
	extra []string
	// path is prepended to the jobs' PATH.
	path string
}

// requireSlurm skips a test that needs a real Slurm, or fails it when CI says it must run.
func requireSlurm(t *testing.T) {
	t.Helper()
	var missing []string
	for _, tool := range []string{"munged", "mungekey", "slurmctld", "slurmd", "srun",
		"sbatch", "salloc", "scontrol", "sinfo", "squeue", "scancel", "unshare", "cc"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if _, err := os.Stat("/usr/include/slurm/spank.h"); err != nil {
		missing = append(missing, "slurm/spank.h (libslurm-dev)")
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	if len(missing) == 0 {
		return
	}
	why := "needs " + strings.Join(missing, ", ")
	if os.Getenv("SCAN_GATE_REQUIRE_SLURM") == "1" ||
		os.Getenv("SCAN_GATE_REQUIRE_SCANNERS") == "1" {
		t.Fatalf("%s (apt-get install slurm-wlm munge libslurm-dev; run as root)", why)
	}
	t.Skip(why)
}

// startCluster starts a one-node cluster and waits until its node is idle.
func startCluster(t *testing.T, opts clusterOptions) *cluster {
	t.Helper()
	start := time.Now()
	dir := reachableDir(t)
	c := &cluster{t: t, dir: dir, conf: filepath.Join(dir, "etc", "slurm.conf"),
		plugstack: filepath.Join(dir, "etc", "plugstack.conf"), path: safePath}
	if opts.path != "" {
		c.path = opts.path + ":" + safePath
	}
	for _, sub := range []string{"munge", "etc", "state", "spool", "run", "log"} {
		mkdir(t, filepath.Join(dir, sub), 0o755)
	}
	t.Cleanup(c.stop)

	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	c.node, _, _ = strings.Cut(host, ".")
	cpus, memory := nodeResources(t)
	ports := freePorts(t, 2)
	conf := fmt.Sprintf(slurmConf, c.node, ports[0], ports[1], dir, c.plugstack,
		strings.Join(opts.extra, "\n"), c.node, cpus, memory)
	write(t, c.conf, conf, 0o644)
	write(t, c.plugstack, "", 0o644)

	munge := filepath.Join(dir, "munge")
	run(t, "mungekey", "-c", "-k", filepath.Join(munge, "munge.key"))
	c.daemon("munged", "-F", "--key-file="+filepath.Join(munge, "munge.key"),
		"--socket="+filepath.Join(munge, "munge.socket"),
		"--pid-file="+filepath.Join(munge, "munged.pid"),
		"--seed-file="+filepath.Join(munge, "munged.seed"),
		"--log-file="+filepath.Join(dir, "log", "munged.log"))
	waitFor(t, 10*time.Second, "munged's socket", func() bool {
		_, err := os.Stat(filepath.Join(munge, "munge.socket"))
		return err == nil
	})
	c.daemon("slurmctld", "-D", "-i", "-f", c.conf)
	c.daemon("slurmd", "-D", "-f", c.conf)
	waitFor(t, 30*time.Second, "the node to be idle", func() bool {
		return c.nodeState() == "idle"
	})
	t.Logf("Slurm started in %s (node %s, ports %d and %d)",
		time.Since(start).Round(time.Millisecond), c.node, ports[0], ports[1])
	return c
}

// with returns the cluster for a subtest, whose failures then end the subtest alone.
func (c *cluster) with(t *testing.T) *cluster {
	sub := *c
	sub.t = t
	return &sub
}

// slurmConf is the configuration of ../../../../shared/slurm-lab.md, on chosen ports.
const slurmConf = `ClusterName=scangate
SlurmctldHost=%s(127.0.0.1)
SlurmctldPort=%d
SlurmdPort=%d
AuthType=auth/munge
AuthInfo=socket=%[4]s/munge/munge.socket
CredType=cred/munge
SlurmUser=root
SlurmdUser=root
StateSaveLocation=%[4]s/state
SlurmdSpoolDir=%[4]s/spool
SlurmctldPidFile=%[4]s/run/slurmctld.pid
SlurmdPidFile=%[4]s/run/slurmd.pid
SlurmctldLogFile=%[4]s/log/slurmctld.log
SlurmdLogFile=%[4]s/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
PlugStackConfig=%[5]s
%[6]s
NodeName=%[7]s CPUs=%[8]d RealMemory=%[9]d State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
`

// daemon starts a Slurm or munge daemon in the foreground, to be stopped by its PID.
func (c *cluster) daemon(name string, args ...string) {
	cmd := exec.Command(name, args...)
	cmd.Env = append(c.env(), "HOME=/root")
	cmd.Dir = c.dir
	log, err := os.Create(filepath.Join(c.dir, "log", name+".out"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	// A test binary killed by its timeout runs no cleanup: the daemons go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("starting %s: %v", name, err)
	}
	c.daemons = append(c.daemons, cmd)
}

// stop stops the daemons by PID, newest first: slurmd, slurmctld, munged.
func (c *cluster) stop() {
	for i := len(c.daemons) - 1; i >= 0; i-- {
		cmd := c.daemons[i]
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	}
	c.daemons = nil
	if c.t.Failed() {
		for _, name := range []string{"slurmctld.log", "slurmd.log"} {
			if data, err := os.ReadFile(filepath.Join(c.dir, "log", name)); err == nil {
				c.t.Logf("%s:\n%s", name, lastLines(string(data), 40))
			}
		}
	}
}

func (c *cluster) env() []string {
	return []string{"SLURM_CONF=" + c.conf, "PATH=" + c.path}
}

// result is what a client command did.
type result struct {
	stdout, stderr string
	code           int
	took           time.Duration
}

// as runs a Slurm client command as the job user in dir, as a user at a login node would.
func (c *cluster) as(dir string, name string, args ...string) result {
	return c.command(true, dir, name, args...)
}

// srun runs srun as the job user once the node is idle, so that the job starts at once:
// Slurm allocates no new job on a node where another is still completing, and srun then
// prints that it waits.
func (c *cluster) srun(dir string, args ...string) result {
	c.t.Helper()
	c.requireIdle()
	return c.as(dir, "srun", args...)
}

// admin runs a Slurm client command as root.
func (c *cluster) admin(name string, args ...string) result {
	return c.command(false, c.dir, name, args...)
}

func (c *cluster) command(asUser bool, dir, name string, args ...string) result {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(c.env(), "HOME=/nonexistent")
	cmd.Dir = dir
	if asUser {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{
			Uid: jobUID, Gid: jobGID, Groups: []uint32{}}}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	res := result{stdout: stdout.String(), stderr: stderr.String(), took: time.Since(start)}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		res.code = exitErr.ExitCode()
	case err != nil:
		c.t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return res
}

// nodeState is the node's state as sinfo shows it: idle, mixed, drained, ...
func (c *cluster) nodeState() string {
	cmd := exec.Command("sinfo", "--noheader", "--format=%T")
	cmd.Env = c.env()
	out, _ := cmd.Output()
	return strings.TrimSpace(string(out))
}

// requireIdle waits for the node to be idle again, failing at once if it is drained.
func (c *cluster) requireIdle() {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		state := c.nodeState()
		switch {
		case state == "idle":
			return
		case strings.Contains(state, "drain") || strings.Contains(state, "down"):
			c.t.Fatalf("the node is %s, not idle", state)
		case time.Now().After(deadline):
			c.t.Fatalf("the node is still %s, not idle", state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// job is what scontrol shows of a job.
func (c *cluster) job(id string) map[string]string {
	res := c.admin("scontrol", "--oneliner", "show", "job", id)
	fields := map[string]string{}
	// Values may hold spaces (AdminComment=...): a field starts where " Key=" does.
	line := strings.TrimSpace(res.stdout)
	keys := fieldStart.FindAllStringIndex(line, -1)
	for i, k := range keys {
		end := len(line)
		if i+1 < len(keys) {
			end = keys[i+1][0]
		}
		key, value, _ := strings.Cut(strings.TrimSpace(line[k[0]:end]), "=")
		fields[key] = value
	}
	return fields
}

// fieldStart finds the keys of scontrol's one-line output. No value these tests read has
// " Key=" in it.
var fieldStart = regexp.MustCompile(`(^| )[A-Za-z][A-Za-z:/]*=`)

// waitJob waits for a job to end and returns its record.
func (c *cluster) waitJob(id string, timeout time.Duration) map[string]string {
	c.t.Helper()
	var fields map[string]string
	waitFor(c.t, timeout, "job "+id+" to end", func() bool {
		fields = c.job(id)
		switch fields["JobState"] {
		case "COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "BOOT_FAIL",
			"OUT_OF_MEMORY", "DEADLINE", "PREEMPTED":
			return true
		}
		return false
	})
	return fields
}

// sbatch submits a batch script as the job user and returns the job id.
func (c *cluster) sbatch(dir string, args ...string) string {
	c.t.Helper()
	res := c.as(dir, "sbatch", append([]string{"--parsable"}, args...)...)
	if res.code != 0 {
		c.t.Fatalf("sbatch %s: exit %d: %s", strings.Join(args, " "), res.code, res.stderr)
	}
	id, _, _ := strings.Cut(strings.TrimSpace(res.stdout), ";")
	return id
}

// setPlugstack replaces the plugin stack; the next step reads it.
func (c *cluster) setPlugstack(text string) {
	write(c.t, c.plugstack, text, 0o644)
}

func nodeResources(t *testing.T) (cpus, memory int) {
	out, err := exec.Command("slurmd", "-C").Output()
	if err != nil {
		t.Fatalf("slurmd -C: %v", err)
	}
	for _, field := range strings.Fields(string(out)) {
		key, value, _ := strings.Cut(field, "=")
		n, _ := strconv.Atoi(value)
		switch key {
		case "CPUs":
			cpus = n
		case "RealMemory":
			memory = n * 9 / 10 // a little less than reported, or the node is refused
		}
	}
	if cpus == 0 || memory == 0 {
		t.Fatalf("slurmd -C printed no CPUs or memory: %s", out)
	}
	return cpus, memory
}

// freePorts finds TCP ports nothing listens on, so that the tests never meet another
// Slurm on this machine.
func freePorts(t *testing.T, n int) []int {
	var ports []int
	var listeners []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range listeners {
		l.Close()
	}
	return ports
}

func waitFor(t *testing.T, timeout time.Duration, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func lastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
