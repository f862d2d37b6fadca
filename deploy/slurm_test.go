package deploy

import (
	"archive/tar"
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// writeShards writes a WebDataset of n shards of per samples (a 32 KiB
// "bin" field each) into dir and returns the shards' total size.
func writeShards(t *testing.T, dir string, n, per int) int64 {
	t.Helper()
	var total int64
	for s := range n {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i := range per {
			data := bytes.Repeat([]byte{byte(s*per + i)}, 32<<10)
			if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("%06d.bin", s*per+i), Mode: 0o644, Size: int64(len(data))}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write(data); err != nil {
				t.Fatal(err)
			}
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("train-%06d.tar", s)), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		total += int64(buf.Len())
	}
	return total
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// node is a stokerd process serving the test's folder.
type node struct {
	web, sock string
}

func startStokerd(t *testing.T, root string) *node {
	t.Helper()
	n := &node{web: freePort(t), sock: filepath.Join(root, "stoker.sock")}
	logf, err := os.Create(filepath.Join(root, "stokerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "stokerd"), "--listen", freePort(t), "--http", n.web, "--unix", n.sock,
		"--cache-dir", filepath.Join(root, "cache"), "--memory-cache", "64MiB", "--disk-cache", "0", "--allow-file-root", root, "--log-format", "json")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-exited; logf.Close() })
	deadline := time.Now().Add(time.Minute)
	for {
		if r, err := http.Get("http://" + n.web + "/healthz"); err == nil {
			r.Body.Close()
			if _, err := os.Stat(n.sock); err == nil && r.StatusCode == 200 {
				return n
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logf.Name())
			t.Fatalf("stokerd exited:\n%s", b)
		case <-time.After(20 * time.Millisecond): // poll interval
		}
		if time.Now().After(deadline) {
			t.Fatal("stokerd not healthy after a minute")
		}
	}
}

// metric reads an unlabelled metric of the node.
func (n *node) metric(t *testing.T, name string) float64 {
	t.Helper()
	r, err := http.Get("http://" + n.web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	sc := bufio.NewScanner(r.Body)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			v, _ := strconv.ParseFloat(f[1], 64)
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// slurmEnv is the environment slurmd gives a prolog or epilog of job id
// on node1 (the variables a real one sets, with the job's --extra), plus
// the scripts' settings.
func slurmEnv(n *node, stateDir, job, context, extra string, end time.Time) []string {
	uid, gid := strconv.Itoa(os.Getuid()), strconv.Itoa(os.Getgid())
	return []string{
		"SLURM_SCRIPT_CONTEXT=" + context, "SLURM_JOB_ID=" + job, "SLURM_JOB_UID=" + uid, "SLURM_JOB_GID=" + gid,
		"SLURM_JOB_USER=trainer", "SLURM_JOB_ACCOUNT=ml", "SLURM_JOB_PARTITION=gpu", "SLURM_CLUSTER_NAME=test",
		"SLURM_JOB_NODELIST=node1", "SLURMD_NODENAME=node1", "SLURM_JOB_CONSTRAINTS=", "SLURM_JOB_GPUS=0,1",
		"CUDA_VISIBLE_DEVICES=0,1", "SLURM_JOB_EXTRA=" + extra, "SLURM_JOB_END_TIME=" + strconv.FormatInt(end.Unix(), 10),
		"SLURM_CONF=/etc/slurm/slurm.conf",
		"STOKER_SLURM_CONF=/nonexistent", "STOKER_BIN=" + filepath.Join(binDir, "stoker"), "STOKER_SERVER=unix://" + n.sock,
		"STOKER_SLURM_DIR=" + stateDir,
	}
}

// runScript runs a script with only env (as slurmd does: no inherited
// environment) and returns its exit code, stdout and stderr.
func runScript(t *testing.T, script string, env []string) (int, string, string) {
	t.Helper()
	cmd := exec.Command("/bin/bash", filepath.Join("slurm", script))
	cmd.Env = env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

// The Slurm scripts against a real stokerd: the prolog warms the job's
// dataset (named in its --extra) within the job's deadline and budget and
// logs its progress; the trainer's epoch then misses the cache nowhere;
// the task prolog prints the log into the job's output once and points the
// tasks at the node's socket; the epilog reports the cache and cleans up.
// A job that asks for nothing, or a stokerd that is down, never fails the
// prolog (that would drain the node).
func TestSlurmPrologEpilog(t *testing.T) {
	root := t.TempDir()
	data := filepath.Join(root, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	total := writeShards(t, data, 6, 8)
	n := startStokerd(t, root)
	state := filepath.Join(root, "slurm")
	url := "file://" + data + "/"
	end := time.Now().Add(90 * time.Second) // the job's end: sooner than the 2m it asks for

	code, _, stderr := runScript(t, "prolog.sh", slurmEnv(n, state, "4242", "prolog_slurmd",
		"stoker.url="+url+" stoker.seed=3 stoker.epochs=1 stoker.budget=1GiB stoker.deadline=2m", end))
	logPath := filepath.Join(state, "job-4242.log")
	logText, err := os.ReadFile(logPath)
	if code != 0 || err != nil {
		t.Fatalf("prolog: exit %d, log %v\n%s", code, err, stderr)
	}
	log := string(logText)
	m := regexp.MustCompile(`at most (\d+)s\)`).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the log does not say the deadline:\n%s", log)
	}
	if s, _ := strconv.Atoi(m[1]); s > 90 || s < 60 {
		t.Errorf("deadline %ss: want the job's end (90 s away) to cap its 2m", m[1])
	}
	for _, want := range []string{"stoker: warming " + url, "budget 1GiB", "hint ", "6 shards", "100%", "done", "stoker: warm: " + url} {
		if !strings.Contains(log, want) {
			t.Errorf("the job's log lacks %q:\n%s", want, log)
		}
	}
	if !strings.Contains(stderr, "job 4242: ") {
		t.Errorf("nothing for the slurmd log on stderr: %q", stderr)
	}
	if got := n.metric(t, "stoker_storage_bytes_total"); got != float64(total) {
		t.Errorf("storage bytes after the prolog %v, want the dataset's %d (every shard once)", got, total)
	}

	// The trainer's epoch finds every shard in the cache.
	misses := n.metric(t, "stoker_cache_misses_total")
	if out, err := exec.Command(filepath.Join(binDir, "stoker"), "read", "--server", "unix://"+n.sock, "--seed", "3", "--batch-size", "8", url).CombinedOutput(); err != nil {
		t.Fatalf("stoker read: %v\n%s", err, out)
	}
	if got := n.metric(t, "stoker_cache_misses_total"); got != misses {
		t.Errorf("the epoch after the prolog missed the cache %v times, want 0", got-misses)
	}

	// The task prolog: the log into the job's output, once per node.
	taskEnv := []string{"SLURM_JOB_ID=4242", "SLURM_STEP_ID=0", "SLURM_LOCALID=0", "SLURM_PROCID=0", "TMPDIR=" + root,
		"STOKER_SERVER=unix://" + n.sock, "STOKER_SLURM_DIR=" + state, "PATH=/usr/bin:/bin"}
	code, out, _ := runScript(t, "task-prolog.sh", taskEnv)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || lines[0] != "export STOKER_SERVER=unix://"+n.sock || len(lines) != 1+strings.Count(strings.TrimSpace(log), "\n")+1 {
		t.Fatalf("task prolog: exit %d\n%s", code, out)
	}
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "print ") || !strings.Contains(l, "stoker: ") {
			t.Errorf("task prolog line %q: want print and a log line", l)
		}
	}
	if _, out, _ := runScript(t, "task-prolog.sh", taskEnv); strings.Contains(out, "print ") {
		t.Errorf("the second task on the node printed the log again:\n%s", out)
	}

	// The epilog reports and cleans up.
	code, _, stderr = runScript(t, "epilog.sh", append(slurmEnv(n, state, "4242", "epilog_slurmd", "", end), "SLURM_JOB_EXIT_CODE=0"))
	if code != 0 || !strings.Contains(stderr, "job 4242 ended (exit 0)") || !strings.Contains(stderr, "cache hits") {
		t.Errorf("epilog: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(logPath); !os.IsNotExist(err) {
		t.Errorf("the job's log is still there after the epilog: %v", err)
	}

	// A budget smaller than the dataset warms only what fits.
	if code, _, stderr := runScript(t, "prolog.sh", slurmEnv(n, state, "4243", "prolog_slurmd", "stoker.url="+url+" stoker.seed=3 stoker.budget=300KiB", end)); code != 0 {
		t.Fatalf("prolog with a budget: exit %d\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "job-4243.log")); !strings.Contains(string(b), ": 1 shards,") {
		t.Errorf("a 300 KiB budget over shards of about 260 KiB: want a hint of 1 shard:\n%s", b)
	}

	// A job that asks for nothing: no log, exit 0.
	if code, _, stderr := runScript(t, "prolog.sh", slurmEnv(n, state, "4244", "prolog_slurmd", "", end)); code != 0 {
		t.Fatalf("prolog without a request: exit %d\n%s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(state, "job-4244.log")); !os.IsNotExist(err) {
		t.Errorf("a log for a job that asked for nothing: %v", err)
	}

	// stokerd down: the prolog says so and exits 0.
	down := slurmEnv(n, state, "4245", "prolog_slurmd", "stoker.url="+url, end)
	down = append(down, "STOKER_SERVER=unix://"+filepath.Join(root, "missing.sock"))
	if code, _, stderr := runScript(t, "prolog.sh", down); code != 0 {
		t.Fatalf("prolog with stokerd down: exit %d\n%s", code, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(state, "job-4245.log")); !strings.Contains(string(b), "stopped (exit 1)") {
		t.Errorf("prolog with stokerd down: want the failure in the job's log:\n%s", b)
	}
}
