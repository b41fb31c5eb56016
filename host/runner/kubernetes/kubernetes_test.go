package kubernetes

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/marin-go/marin/plugins/golden"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/marin-go/marin/host/runner"
)

// No Kubernetes API server is available where these tests run: they use
// client-go's fake clientset, which stores objects but runs no controllers,
// so the tests play the Job controller and the kubelet by writing statuses.

func spec(t *testing.T, prefix, step string, attempt int, raw map[string]any) runner.Spec {
	t.Helper()
	res, err := runner.ParseResources(raw, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := prefix + "/" + step + "-abc123"
	dir := out + "/.executor_jobs/attempt-" + strconv.Itoa(attempt)
	return runner.Spec{StepName: step, Op: "train", OutputPath: out, Prefix: prefix, Attempt: attempt,
		JobDir: dir, JobURL: dir + "/job.json", Resources: res, Env: map[string]string{"MARIN_LOG_LEVEL": "info"}}
}

func newRunner(t *testing.T, cfg Config, objs ...any) (*Runner, *fake.Clientset) {
	t.Helper()
	cs := fake.NewClientset()
	cfg.Client = cs
	if cfg.Namespace == "" {
		cfg.Namespace = "research"
	}
	if cfg.Image == "" {
		cfg.Image = "ghcr.io/example/marin:v1"
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r, cs
}

// TestManifestGolden checks the generated Jobs (and Services) against
// testdata/*.yaml; regenerate them with
//
//	go test ./host/runner/kubernetes -run TestManifestGolden -update
func TestManifestGolden(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		spec runner.Spec
	}{
		{"cpu_object_store", Config{CredentialsSecret: "marin-s3"},
			spec(t, "s3://bucket/marin", "tokenized/quickstart_chat", 1, map[string]any{"cpus": int64(4), "memory": "16G"})},
		{"gpu_kueue_selector_tolerations", Config{CredentialsSecret: "marin-gcs", ServiceAccount: "marin-runner"},
			spec(t, "gs://bucket/marin", "checkpoints/tulu3_sft", 2, map[string]any{
				"device": "cuda", "num_devices": int64(8), "cpus": int64(64), "memory": "1536M", "time_limit": "12h",
				"queue_name": "team-nlp", "node_selector": map[string]any{"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
				"tolerations": []any{map[string]any{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}},
			})},
		{"tpu_multinode_indexed", Config{CredentialsSecret: "marin-gcs"},
			spec(t, "gs://bucket/marin", "checkpoints/tpu_sft", 1, map[string]any{
				"node_count": int64(4), "device": "tpu", "num_devices": int64(4), "image": "ghcr.io/example/marin:tpu",
				"node_selector": map[string]any{"cloud.google.com/gke-tpu-topology": "4x4"},
			})},
		{"shared_file_prefix", Config{SharedClaim: "lustre", SharedPath: "/lustre/marin", KeepJobs: true},
			spec(t, "file:///lustre/marin", "eval/quickstart_after_sft", 1, nil)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, _ := newRunner(t, c.cfg)
			job, svc, err := r.Manifest(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			desc, err := r.Describe(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			got := "# " + desc + "\n"
			b, err := yaml.Marshal(job)
			if err != nil {
				t.Fatal(err)
			}
			got += string(b)
			if svc != nil {
				b, err := yaml.Marshal(svc)
				if err != nil {
					t.Fatal(err)
				}
				got += "---\n" + string(b)
			}
			path := filepath.Join("testdata", c.name+".yaml")
			golden.Compare(t, path, []byte(got))
		})
	}
}

func TestJobName(t *testing.T) {
	long := spec(t, "gs://b/m", "checkpoints/"+strings.Repeat("Very_Long-Name.", 10), 12, nil)
	n := JobName(long)
	if len(n) > 52 || !strings.HasPrefix(n, "marin-checkpoints-very-long-name") || !strings.HasSuffix(n, "-a12") {
		t.Errorf("JobName = %q (%d chars)", n, len(n))
	}
	other := long
	other.OutputPath += "x"
	if JobName(other) == n {
		t.Error("two outputs share a Job name")
	}
	if n := JobName(spec(t, "gs://b/m", "///", 1, nil)); !strings.HasPrefix(n, "marin-") || strings.Contains(n, "--") {
		t.Errorf("JobName of an unspellable step = %q", n)
	}
}

func TestRefusals(t *testing.T) {
	r, _ := newRunner(t, Config{})
	if _, err := r.Describe(spec(t, "file:///shared", "a", 1, nil)); err == nil || !strings.Contains(err.Error(), "--k8s-shared-claim") {
		t.Errorf("file prefix without a claim: %v", err)
	}
	r.cfg.Image = ""
	if _, err := r.Describe(spec(t, "gs://b/m", "a", 1, nil)); err == nil || !strings.Contains(err.Error(), "--k8s-image") {
		t.Errorf("no image: %v", err)
	}
	if _, err := New(Config{Client: fake.NewClientset(), SharedClaim: "x"}); err == nil {
		t.Error("a claim without its mount path was accepted")
	}
}

// setJob updates the Job's status as the Job controller would.
func setJob(t *testing.T, cs *fake.Clientset, name string, f func(*batchv1.Job)) {
	t.Helper()
	ctx := context.Background()
	j, err := cs.BatchV1().Jobs("research").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f(j)
	if _, err := cs.BatchV1().Jobs("research").Update(ctx, j, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// putPod creates or replaces a pod of the Job, as the Job controller and
// the kubelet would.
func putPod(t *testing.T, cs *fake.Clientset, job, name string, st corev1.PodStatus, node string) {
	t.Helper()
	ctx := context.Background()
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "research", Labels: map[string]string{LabelJob: job}},
		Spec:       corev1.PodSpec{NodeName: node},
		Status:     st,
	}
	if _, err := cs.CoreV1().Pods("research").Update(ctx, p, metav1.UpdateOptions{}); apierrors.IsNotFound(err) {
		_, err = cs.CoreV1().Pods("research").Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	} else if err != nil {
		t.Fatal(err)
	}
}

func wantState(t *testing.T, j runner.Job, phase runner.Phase, reason ...string) runner.State {
	t.Helper()
	s, err := j.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.Phase != phase {
		t.Fatalf("state %v, want %v", s, phase)
	}
	for _, r := range reason {
		if !strings.Contains(s.Reason, r) {
			t.Errorf("reason %q lacks %q", s.Reason, r)
		}
	}
	return s
}

func TestJobLifecycle(t *testing.T) {
	ctx := context.Background()
	r, cs := newRunner(t, Config{CredentialsSecret: "creds"})
	sp := spec(t, "gs://bucket/marin", "checkpoints/sft", 1, map[string]any{"device": "cuda", "num_devices": int64(2)})
	j, err := r.Submit(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	name := JobName(sp)
	if j.ID() != "Job research/"+name {
		t.Errorf("ID %q", j.ID())
	}
	got, err := cs.BatchV1().Jobs("research").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := got.Spec.Template.Spec.Containers[0]
	if c.Args[2] != sp.JobURL || c.EnvFrom[0].SecretRef.Name != "creds" || c.Resources.Limits.Name("nvidia.com/gpu", "").Value() != 2 {
		t.Errorf("container %+v", c)
	}
	if _, ok := got.Labels[LabelKueueQueue]; ok || got.Spec.Suspend != nil {
		t.Error("a Job without a queue got Kueue's label or was suspended")
	}

	wantState(t, j, runner.Pending, "waiting for its pods")
	putPod(t, cs, name, "p0", corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{
		Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}}}, "")
	wantState(t, j, runner.Pending, "p0: Unschedulable: 0/3 nodes are available: 3 Insufficient nvidia.com/gpu.")
	putPod(t, cs, name, "p0", corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{
		Name: "marin", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}}}}, "gpu-node-1")
	wantState(t, j, runner.Pending, "ImagePullBackOff: Back-off pulling image")
	putPod(t, cs, name, "p0", corev1.PodStatus{Phase: corev1.PodRunning}, "gpu-node-1")
	if s := wantState(t, j, runner.Running); s.Nodes != "gpu-node-1" {
		t.Errorf("nodes %q", s.Nodes)
	}
	putPod(t, cs, name, "p0", corev1.PodStatus{Phase: corev1.PodSucceeded}, "gpu-node-1")
	setJob(t, cs, name, func(j *batchv1.Job) {
		j.Status.Conditions = append(j.Status.Conditions, batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue})
	})
	wantState(t, j, runner.Succeeded)
	if logs := j.Logs(ctx, 20); !strings.Contains(logs, "pod p0:\nfake logs") {
		t.Errorf("logs %q", logs)
	}

	// A succeeded Job is deleted.
	if err := j.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.BatchV1().Jobs("research").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("succeeded Job still there: %v", err)
	}
	wantState(t, j, runner.Failed, "deleted")
}

func TestFailureReasons(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		cond batchv1.JobCondition
		pod  corev1.PodStatus
		want []string
	}{
		{"oom", batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit"},
			corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "marin", State: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}}}}},
			[]string{"BackoffLimitExceeded: Job has reached the specified backoff limit", "pod p0: OOMKilled (exit code 137)"}},
		{"evicted", batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"},
			corev1.PodStatus{Phase: corev1.PodFailed, Reason: "Evicted", Message: "The node was low on resource: ephemeral-storage.",
				Conditions: []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "TerminationByKubelet", Message: "Pod was evicted"}}},
			[]string{"TerminationByKubelet: Pod was evicted", "Evicted: The node was low on resource: ephemeral-storage."}},
		{"preempted", batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded"},
			corev1.PodStatus{Phase: corev1.PodFailed, Conditions: []corev1.PodCondition{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue, Reason: "PreemptionByScheduler", Message: "Preempted in order to admit critical pod"}}},
			[]string{"pod p0: PreemptionByScheduler: Preempted in order to admit critical pod"}},
		{"deadline", batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "DeadlineExceeded", Message: "Job was active longer than specified deadline"},
			corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: "marin", State: corev1.ContainerState{
				Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 143, Signal: 15}}}}},
			[]string{"DeadlineExceeded: Job was active longer than specified deadline", "Error (exit code 143), signal 15"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, cs := newRunner(t, Config{})
			sp := spec(t, "gs://b/m", "x/"+c.name, 1, nil)
			j, err := r.Submit(ctx, sp)
			if err != nil {
				t.Fatal(err)
			}
			putPod(t, cs, JobName(sp), "p0", c.pod, "n1")
			// Before the Job controller marks the Job, a failed pod is
			// still a running job.
			wantState(t, j, runner.Running)
			setJob(t, cs, JobName(sp), func(j *batchv1.Job) { j.Status.Conditions = append(j.Status.Conditions, c.cond) })
			wantState(t, j, runner.Failed, c.want...)
			// A failed Job is kept for inspection.
			if err := j.Finish(ctx, false); err != nil {
				t.Fatal(err)
			}
			if _, err := cs.BatchV1().Jobs("research").Get(ctx, JobName(sp), metav1.GetOptions{}); err != nil {
				t.Errorf("failed Job was deleted: %v", err)
			}
		})
	}
}

func TestKueueAndKeepJobs(t *testing.T) {
	ctx := context.Background()
	r, cs := newRunner(t, Config{KeepJobs: true})
	sp := spec(t, "gs://b/m", "checkpoints/queued", 1, map[string]any{"queue_name": "team-a"})
	j, err := r.Submit(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	name := JobName(sp)
	got, _ := cs.BatchV1().Jobs("research").Get(ctx, name, metav1.GetOptions{})
	if got.Labels[LabelKueueQueue] != "team-a" || got.Spec.Suspend == nil || !*got.Spec.Suspend {
		t.Fatalf("labels %v suspend %v: want Kueue's queue label and a suspended Job", got.Labels, got.Spec.Suspend)
	}
	wantState(t, j, runner.Pending, "suspended until Kueue admits it to queue team-a")
	// Kueue admits it.
	setJob(t, cs, name, func(j *batchv1.Job) { f := false; j.Spec.Suspend = &f })
	wantState(t, j, runner.Pending, "waiting for its pods")
	setJob(t, cs, name, func(j *batchv1.Job) {
		j.Status.Conditions = []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: corev1.ConditionTrue}}
	})
	wantState(t, j, runner.Succeeded)
	if err := j.Finish(ctx, true); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.BatchV1().Jobs("research").Get(ctx, name, metav1.GetOptions{}); err != nil {
		t.Errorf("KeepJobs: the Job was deleted: %v", err)
	}
}

func TestMultiNodeServiceAndCancel(t *testing.T) {
	ctx := context.Background()
	r, cs := newRunner(t, Config{})
	sp := spec(t, "gs://b/m", "checkpoints/multi", 1, map[string]any{"node_count": int64(2)})
	j, err := r.Submit(ctx, sp)
	if err != nil {
		t.Fatal(err)
	}
	name := JobName(sp)
	job, err := cs.BatchV1().Jobs("research").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if job.Spec.CompletionMode == nil || *job.Spec.CompletionMode != batchv1.IndexedCompletion || *job.Spec.Completions != 2 || *job.Spec.Parallelism != 2 {
		t.Errorf("job spec %+v", job.Spec)
	}
	svc, err := cs.CoreV1().Services("research").Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || svc.Spec.Selector[LabelJob] != name || len(svc.OwnerReferences) != 1 || svc.OwnerReferences[0].Name != name {
		t.Errorf("service %+v", svc)
	}
	if job.Spec.Template.Spec.Subdomain != name {
		t.Errorf("subdomain %q", job.Spec.Template.Spec.Subdomain)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range job.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	if env["MARIN_NODE_LIST"].Value != name+"-0."+name+","+name+"-1."+name || env["MARIN_COORDINATOR_ADDRESS"].Value != name+"-0."+name+":29500" ||
		env["MARIN_NODE_RANK"].ValueFrom == nil || !strings.Contains(env["MARIN_NODE_RANK"].ValueFrom.FieldRef.FieldPath, "job-completion-index") {
		t.Errorf("rank environment %+v", env)
	}
	if err := j.Cancel(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.BatchV1().Jobs("research").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("cancelled Job still there: %v", err)
	}
	if _, err := cs.CoreV1().Services("research").Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("cancelled Job's Service still there: %v", err)
	}
	if err := j.Cancel(ctx); err != nil {
		t.Errorf("cancelling a deleted Job: %v", err)
	}
}

// A create that fails (here: the Job exists already, as after a crash
// between create and the job file) is an error naming the Job.
func TestSubmitErrors(t *testing.T) {
	ctx := context.Background()
	r, _ := newRunner(t, Config{})
	sp := spec(t, "gs://b/m", "a", 1, nil)
	if _, err := r.Submit(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Submit(ctx, sp); err == nil || !strings.Contains(err.Error(), "create Job research/"+JobName(sp)) {
		t.Errorf("second create: %v", err)
	}
}
