package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const testKubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster:
    server: https://127.0.0.1:1
contexts:
- name: research
  context:
    cluster: nowhere
    namespace: research
    user: someone
current-context: research
users:
- name: someone
  user:
    token: not-used
`

// A dry run says where each step would run and what its job would ask the
// scheduler for; nothing is submitted (the kubeconfig names no server).
func TestRunnerDryRun(t *testing.T) {
	repo, _ := filepath.Abs("../..")
	dir := t.TempDir()
	// The quickstart, its pretraining step with scheduler resources.
	script := quickScript(t, repo, dir)
	src := readFile(t, script)
	const anchor = "        steps_per_hf_export = PRETRAIN_STEPS,\n"
	if !strings.Contains(src, anchor) {
		t.Fatalf("quickstart.star has no line %q", anchor)
	}
	src = strings.Replace(src, anchor, anchor+`        resources = ResourceConfig(cpus = 4, memory = "64G", partition = "gpu", gres = "gpu:2", queue_name = "team"),`+"\n", 1)
	write(t, script, src)
	kc := filepath.Join(dir, "kubeconfig")
	write(t, kc, testKubeconfig)
	prefix := filepath.Join(dir, "out")

	r := marin(t, repo, nil, script, "--dry-run", "--json", "--prefix", prefix)
	if r.code != 0 {
		t.Fatalf("local: exit %d: %s", r.code, r.stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(r.stdout))
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	steps := 0 // one line per step
	for sc.Scan() {
		steps++
		var d struct{ Runner, Resources string }
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatal(err)
		}
		if d.Runner != "local" || d.Resources != "" {
			t.Errorf("local dry run: %s", sc.Text())
		}
	}

	k8s := []string{"--runner", "kubernetes", "--kubeconfig", kc, "--k8s-image", "marin:test"}
	r = marin(t, repo, nil, append([]string{script, "--dry-run", "--prefix", prefix}, k8s...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--shared-prefix") {
		t.Errorf("unshared file prefix: exit %d: %s", r.code, r.stderr)
	}
	r = marin(t, repo, nil, append([]string{script, "--dry-run", "--prefix", prefix, "--shared-prefix"}, k8s...)...)
	if r.code != exitScript || !strings.Contains(r.stderr, "--k8s-shared-claim") || !strings.Contains(r.stderr, fmt.Sprintf("cannot run %d step(s)", steps)) {
		t.Errorf("file prefix without a claim: exit %d: %s", r.code, r.stderr)
	}
	r = marin(t, repo, nil, append([]string{script, "--dry-run", "--prefix", prefix, "--shared-prefix", "--k8s-shared-claim", "lustre", "--resource", "cpus=3"}, k8s...)...)
	if r.code != 0 {
		t.Fatalf("kubernetes: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"runner kubernetes", "runs on kubernetes: Job research/marin-documents-quickstart-tasks-", "image marin:test; requests cpu=3\n",
		"image marin:test; requests cpu=3 memory=64Gi; Kueue queue team\n"} {
		if !strings.Contains(trimLines(r.stdout), want) {
			t.Errorf("kubernetes dry run lacks %q:\n%s", want, r.stdout)
		}
	}
	r = marin(t, repo, nil, append([]string{script, "--dry-run", "--prefix", prefix, "--shared-prefix", "--k8s-shared-claim", "lustre", "--resource", "gpus=3"}, k8s...)...)
	if r.code != exitUsage || !strings.Contains(r.stderr, "--resource gpus: unknown field") {
		t.Errorf("unknown --resource field: exit %d: %s", r.code, r.stderr)
	}

	if _, err := exec.LookPath("sbatch"); err != nil {
		t.Log("no sbatch here: the slurm dry run is not checked")
		return
	}
	r = marin(t, repo, []string{"MARIN_RUNNER=slurm"}, script, "--dry-run", "--prefix", prefix, "--shared-prefix", "--resource", "time_limit=2h")
	if r.code != 0 {
		t.Fatalf("slurm: exit %d: %s", r.code, r.stderr)
	}
	for _, want := range []string{"runner slurm", "runs on slurm: --nodes=1 --ntasks-per-node=1 --time=02:00:00\n",
		"runs on slurm: --nodes=1 --ntasks-per-node=1 --cpus-per-task=4 --mem=64G --gres=gpu:2 --time=02:00:00 --partition=gpu\n"} {
		if !strings.Contains(trimLines(r.stdout), want) {
			t.Errorf("slurm dry run lacks %q:\n%s", want, r.stdout)
		}
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// trimLines drops the spaces tabwriter pads lines with.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n")
}
