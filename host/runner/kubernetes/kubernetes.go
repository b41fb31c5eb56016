// Package kubernetes runs marin steps as Kubernetes Jobs through client-go,
// with the cluster and credentials of the user's kubeconfig.
//
// A step becomes one batch/v1 Job (Indexed, with a headless Service for the
// pods' names, when node_count > 1) whose pods run the marin image's
// `marin run-step --job URL`. Resources map to container requests and
// limits (cpu, memory, nvidia.com/gpu for cuda, google.com/tpu for tpu), the
// pod's node selector and tolerations, activeDeadlineSeconds for the time
// limit, and the Kueue label kueue.x-k8s.io/queue-name (the Job is then
// created suspended, for Kueue to admit). Object-store credentials come from
// a named Secret (envFrom); a shared file:// prefix is a PersistentVolumeClaim
// mounted at the prefix's path. Pods never restart and Jobs never retry
// (backoffLimit 0): a failed or evicted pod fails the step, and the next
// marin run retries it. A succeeded Job is deleted unless KeepJobs; a
// failed one is kept for inspection (its pod logs are shown by marin).
//
// Every pod gets MARIN_NODE_RANK (its completion index), MARIN_NUM_NODES,
// MARIN_NODE_LIST and MARIN_COORDINATOR_ADDRESS, as on Slurm.
package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/marin-go/marin/host/runner"
)

// Labels and annotations marin puts on its Jobs, Services and pods.
const (
	LabelApp        = "app.kubernetes.io/name" // "marin"
	LabelJob        = "marin.dev/job"          // the Job's name, on its pods (Service selector)
	LabelStep       = "marin.dev/step"         // the step name as a label value
	LabelAttempt    = "marin.dev/attempt"
	LabelKueueQueue = "kueue.x-k8s.io/queue-name"
	AnnotationStep  = "marin.dev/step-name"
	AnnotationOut   = "marin.dev/output-path"
	// completionIndex is the annotation the Job controller puts on the pods
	// of an Indexed Job.
	completionIndex = "batch.kubernetes.io/job-completion-index"
	containerName   = "marin"
)

// DefaultCoordinatorPort is the port of MARIN_COORDINATOR_ADDRESS.
const DefaultCoordinatorPort = 29500

// Config configures the runner.
type Config struct {
	// Client talks to the cluster (LoadClient, or a fake in tests).
	Client clientset.Interface
	// Namespace the Jobs are created in.
	Namespace string
	// Image is the marin image (see the repository's Dockerfile), unless a
	// step's resources.image names another.
	Image string
	// CredentialsSecret names a Secret whose keys become the pods'
	// environment: object-store credentials (AWS_ACCESS_KEY_ID, …,
	// GOOGLE_APPLICATION_CREDENTIALS with a mounted key, HF_TOKEN).
	CredentialsSecret string
	// ServiceAccount runs the pods (Workload Identity / IRSA); empty: the
	// namespace's default.
	ServiceAccount string
	// KeepJobs keeps succeeded Jobs instead of deleting them.
	KeepJobs bool
	// SharedClaim is a PersistentVolumeClaim holding a file:// prefix,
	// mounted at SharedPath in every pod.
	SharedClaim, SharedPath string
	// CoordinatorPort: default DefaultCoordinatorPort.
	CoordinatorPort int
}

// Runner submits steps as Kubernetes Jobs.
type Runner struct{ cfg Config }

// New checks cfg.
func New(cfg Config) (*Runner, error) {
	if cfg.Client == nil {
		return nil, fmt.Errorf("kubernetes runner: no client")
	}
	if cfg.Namespace == "" {
		cfg.Namespace = "default"
	}
	if cfg.CoordinatorPort == 0 {
		cfg.CoordinatorPort = DefaultCoordinatorPort
	}
	if (cfg.SharedClaim == "") != (cfg.SharedPath == "") {
		return nil, fmt.Errorf("kubernetes runner: a shared volume claim needs the path it is mounted at, and the other way round")
	}
	return &Runner{cfg: cfg}, nil
}

// LoadClient connects with the user's kubeconfig: kubeconfig (else
// $KUBECONFIG, else ~/.kube/config, else the in-cluster service account)
// and context (else the current one). It returns the client and the
// context's namespace.
func LoadClient(kubeconfig, context string) (clientset.Interface, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	rc, err := cc.ClientConfig()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes runner: load kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes runner: kubeconfig namespace: %w", err)
	}
	cs, err := clientset.NewForConfig(rc)
	if err != nil {
		return nil, "", fmt.Errorf("kubernetes runner: %w", err)
	}
	return cs, ns, nil
}

// Name is "kubernetes".
func (r *Runner) Name() string { return runner.Kubernetes }

var notDNS = regexp.MustCompile(`[^a-z0-9]+`)

// dnsLabel makes s a DNS-1123 label of at most n characters.
func dnsLabel(s string, n int) string {
	s = strings.Trim(notDNS.ReplaceAllString(strings.ToLower(s), "-"), "-")
	if len(s) > n {
		s = strings.TrimRight(s[:n], "-")
	}
	return s
}

// JobName is the name of spec's Job: marin-{step}-{hash}-a{attempt}, at
// most 52 characters so that an Indexed Job's pod host names
// ({job}-{index}) stay valid labels.
func JobName(spec runner.Spec) string {
	sum := sha256.Sum256([]byte(spec.OutputPath))
	hash := hex.EncodeToString(sum[:])[:8]
	tail := fmt.Sprintf("-%s-a%d", hash, spec.Attempt)
	step := dnsLabel(spec.StepName, 52-len("marin-")-len(tail))
	if step == "" {
		return "marin" + tail
	}
	return "marin-" + step + tail
}

func (r *Runner) image(spec runner.Spec) (string, error) {
	if spec.Resources.Image != "" {
		return spec.Resources.Image, nil
	}
	if r.cfg.Image == "" {
		return "", fmt.Errorf("no container image: give --k8s-image (the marin image, see the Dockerfile) or resources.image")
	}
	return r.cfg.Image, nil
}

// check refuses what this runner cannot run.
func (r *Runner) check(spec runner.Spec) error {
	if strings.HasPrefix(spec.Prefix, "file://") && r.cfg.SharedClaim == "" {
		return fmt.Errorf("prefix %s is a file system path: mount it in the pods with --k8s-shared-claim NAME (a PersistentVolumeClaim of that file system), or use an object store prefix", spec.Prefix)
	}
	_, err := r.image(spec)
	return err
}

// requirements are the container's resource requests and limits.
func requirements(res runner.Resources) corev1.ResourceRequirements {
	req, lim := corev1.ResourceList{}, corev1.ResourceList{}
	if res.CPUs > 0 {
		req[corev1.ResourceCPU] = *resource.NewQuantity(int64(res.CPUs), resource.DecimalSI)
	}
	if res.MemoryMiB > 0 {
		q := resource.MustParse(strconv.FormatInt(res.MemoryMiB, 10) + "Mi")
		if res.MemoryMiB%1024 == 0 {
			q = resource.MustParse(strconv.FormatInt(res.MemoryMiB/1024, 10) + "Gi")
		}
		req[corev1.ResourceMemory] = q
		lim[corev1.ResourceMemory] = q
	}
	var accel corev1.ResourceName
	switch res.Device {
	case "cuda":
		accel = "nvidia.com/gpu"
	case "tpu":
		accel = "google.com/tpu"
	}
	if accel != "" && res.DevicesPerNode > 0 {
		q := *resource.NewQuantity(int64(res.DevicesPerNode), resource.DecimalSI)
		req[accel], lim[accel] = q, q
	}
	out := corev1.ResourceRequirements{}
	if len(req) > 0 {
		out.Requests = req
	}
	if len(lim) > 0 {
		out.Limits = lim
	}
	return out
}

// Describe summarises spec's Job.
func (r *Runner) Describe(spec runner.Spec) (string, error) {
	if err := r.check(spec); err != nil {
		return "", err
	}
	res := spec.Resources
	img, _ := r.image(spec)
	parts := []string{fmt.Sprintf("Job %s/%s", r.cfg.Namespace, JobName(spec)), "image " + img}
	if res.Nodes > 1 {
		parts = append(parts, fmt.Sprintf("%d pods (Indexed)", res.Nodes))
	}
	rr := requirements(res)
	var reqs []string
	for _, name := range sortedNames(rr.Requests) {
		q := rr.Requests[name]
		reqs = append(reqs, string(name)+"="+q.String())
	}
	if len(reqs) > 0 {
		parts = append(parts, "requests "+strings.Join(reqs, " "))
	}
	if len(res.NodeSelector) > 0 {
		var sel []string
		for k, v := range res.NodeSelector {
			sel = append(sel, k+"="+v)
		}
		sort.Strings(sel)
		parts = append(parts, "nodeSelector "+strings.Join(sel, ","))
	}
	for _, t := range res.Tolerations {
		parts = append(parts, "toleration "+tolerationString(t))
	}
	if res.TimeLimit > 0 {
		parts = append(parts, "activeDeadlineSeconds "+strconv.FormatInt(int64(res.TimeLimit.Seconds()), 10))
	}
	if res.QueueName != "" {
		parts = append(parts, "Kueue queue "+res.QueueName)
	}
	return strings.Join(parts, "; "), nil
}

func sortedNames(l corev1.ResourceList) []corev1.ResourceName {
	names := make([]corev1.ResourceName, 0, len(l))
	for n := range l {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i] < names[j] })
	return names
}

func tolerationString(t runner.Toleration) string {
	s := t.Key
	if t.Operator == "Exists" {
		s += " exists"
	} else if t.Value != "" {
		s += "=" + t.Value
	}
	if t.Effect != "" {
		s += ":" + t.Effect
	}
	return s
}

// Manifest is the Job of spec, and for a multi-node step the headless
// Service that gives its pods stable names.
func (r *Runner) Manifest(spec runner.Spec) (*batchv1.Job, *corev1.Service, error) {
	if err := r.check(spec); err != nil {
		return nil, nil, err
	}
	img, _ := r.image(spec)
	res := spec.Resources
	name := JobName(spec)
	labels := map[string]string{
		LabelApp:     "marin",
		LabelStep:    dnsLabel(spec.StepName, 63),
		LabelAttempt: strconv.Itoa(spec.Attempt),
	}
	if res.QueueName != "" {
		labels[LabelKueueQueue] = res.QueueName
	}
	annotations := map[string]string{AnnotationStep: spec.StepName, AnnotationOut: spec.OutputPath}
	podLabels := map[string]string{LabelApp: "marin", LabelJob: name}

	var env []corev1.EnvVar
	keys := make([]string, 0, len(spec.Env))
	for k := range spec.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, corev1.EnvVar{Name: k, Value: spec.Env[k]})
	}
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	env = append(env, field("MARIN_POD_NAME", "metadata.name"), field("MARIN_K8S_NODE", "spec.nodeName"))
	env = append(env, corev1.EnvVar{Name: "MARIN_NUM_NODES", Value: strconv.Itoa(res.Nodes)})
	var svc *corev1.Service
	var completionMode *batchv1.CompletionMode
	subdomain := ""
	if res.Nodes > 1 {
		mode := batchv1.IndexedCompletion
		completionMode = &mode
		subdomain = name
		hosts := make([]string, res.Nodes)
		for i := range hosts {
			hosts[i] = fmt.Sprintf("%s-%d.%s", name, i, name)
		}
		env = append(env,
			field("MARIN_NODE_RANK", "metadata.annotations['"+completionIndex+"']"),
			corev1.EnvVar{Name: "MARIN_NODE_LIST", Value: strings.Join(hosts, ",")},
			corev1.EnvVar{Name: "MARIN_COORDINATOR_ADDRESS", Value: fmt.Sprintf("%s:%d", hosts[0], r.cfg.CoordinatorPort)},
		)
		svc = &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.cfg.Namespace, Labels: labels, Annotations: annotations},
			Spec: corev1.ServiceSpec{
				ClusterIP:                corev1.ClusterIPNone,
				Selector:                 map[string]string{LabelJob: name},
				PublishNotReadyAddresses: true,
				Ports: []corev1.ServicePort{{Name: "coordinator", Port: int32(r.cfg.CoordinatorPort),
					TargetPort: intstr.FromInt32(int32(r.cfg.CoordinatorPort))}},
			},
		}
	} else {
		env = append(env,
			corev1.EnvVar{Name: "MARIN_NODE_RANK", Value: "0"},
			field("MARIN_NODE_LIST", "status.podIP"),
			corev1.EnvVar{Name: "MARIN_COORDINATOR_ADDRESS", Value: fmt.Sprintf("$(MARIN_NODE_LIST):%d", r.cfg.CoordinatorPort)},
		)
	}
	container := corev1.Container{
		Name:      containerName,
		Image:     img,
		Command:   []string{"marin"},
		Args:      []string{"run-step", "--job", spec.JobURL},
		Env:       env,
		Resources: requirements(res),
	}
	if r.cfg.CredentialsSecret != "" {
		container.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: r.cfg.CredentialsSecret}}}}
	}
	pod := corev1.PodSpec{
		RestartPolicy:      corev1.RestartPolicyNever,
		ServiceAccountName: r.cfg.ServiceAccount,
		NodeSelector:       res.NodeSelector,
		Subdomain:          subdomain,
		Containers:         []corev1.Container{container},
	}
	for _, t := range res.Tolerations {
		pod.Tolerations = append(pod.Tolerations, corev1.Toleration{
			Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value,
			Effect: corev1.TaintEffect(t.Effect), TolerationSeconds: t.TolerationSeconds,
		})
	}
	if r.cfg.SharedClaim != "" {
		pod.Volumes = []corev1.Volume{{Name: "prefix", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: r.cfg.SharedClaim}}}}
		pod.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "prefix", MountPath: r.cfg.SharedPath}}
	}
	n := int32(res.Nodes)
	zero := int32(0)
	job := &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: r.cfg.Namespace, Labels: labels, Annotations: annotations},
		Spec: batchv1.JobSpec{
			Completions:    &n,
			Parallelism:    &n,
			CompletionMode: completionMode,
			BackoffLimit:   &zero,
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels, Annotations: annotations},
				Spec:       pod,
			},
		},
	}
	if res.TimeLimit > 0 {
		s := int64(res.TimeLimit.Seconds())
		if s < 1 {
			s = 1
		}
		job.Spec.ActiveDeadlineSeconds = &s
	}
	if res.QueueName != "" {
		// Kueue admits the Job by unsuspending it.
		t := true
		job.Spec.Suspend = &t
	}
	return job, svc, nil
}

// Submit creates the Job (and Service).
func (r *Runner) Submit(ctx context.Context, spec runner.Spec) (runner.Job, error) {
	job, svc, err := r.Manifest(spec)
	if err != nil {
		return nil, err
	}
	// Creating runs to completion even when the run is being interrupted,
	// so that a created Job is always known and can be deleted.
	cctx := context.WithoutCancel(ctx)
	created, err := r.cfg.Client.BatchV1().Jobs(r.cfg.Namespace).Create(cctx, job, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create Job %s/%s: %w", r.cfg.Namespace, job.Name, err)
	}
	j := &kjob{r: r, name: created.Name, queue: spec.Resources.QueueName}
	if svc != nil {
		svc.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "Job", Name: created.Name, UID: created.UID}}
		if _, err := r.cfg.Client.CoreV1().Services(r.cfg.Namespace).Create(cctx, svc, metav1.CreateOptions{}); err != nil {
			_ = j.Cancel(cctx)
			return nil, fmt.Errorf("create Service %s/%s for the pods' names: %w", r.cfg.Namespace, svc.Name, err)
		}
		j.service = true
	}
	return j, nil
}

// kjob is a created Job.
type kjob struct {
	r       *Runner
	name    string
	queue   string
	service bool
}

func (j *kjob) ID() string { return fmt.Sprintf("Job %s/%s", j.r.cfg.Namespace, j.name) }

func (j *kjob) pods(ctx context.Context) ([]corev1.Pod, error) {
	l, err := j.r.cfg.Client.CoreV1().Pods(j.r.cfg.Namespace).List(ctx, metav1.ListOptions{LabelSelector: LabelJob + "=" + j.name})
	if err != nil {
		return nil, fmt.Errorf("list the pods of %s: %w", j.ID(), err)
	}
	sort.Slice(l.Items, func(a, b int) bool { return l.Items[a].Name < l.Items[b].Name })
	return l.Items, nil
}

// State reads the Job's conditions and, for the details, its pods.
func (j *kjob) State(ctx context.Context) (runner.State, error) {
	job, err := j.r.cfg.Client.BatchV1().Jobs(j.r.cfg.Namespace).Get(ctx, j.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return runner.State{Phase: runner.Failed, Reason: "the Job was deleted"}, nil
	}
	if err != nil {
		return runner.State{}, fmt.Errorf("get %s: %w", j.ID(), err)
	}
	pods, err := j.pods(ctx)
	if err != nil {
		return runner.State{}, err
	}
	var nodes []string
	for _, p := range pods {
		if p.Spec.NodeName != "" {
			nodes = append(nodes, p.Spec.NodeName)
		}
	}
	st := runner.State{Nodes: strings.Join(dedupe(nodes), ",")}
	for _, c := range job.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			st.Phase = runner.Succeeded
			return st, nil
		case batchv1.JobFailed:
			st.Phase = runner.Failed
			st.Reason = strings.TrimSpace(c.Reason + ": " + c.Message)
			if d := podFailures(pods); d != "" {
				st.Reason += "; " + d
			}
			return st, nil
		}
	}
	if job.Spec.Suspend != nil && *job.Spec.Suspend {
		st.Phase = runner.Pending
		st.Reason = "suspended"
		if j.queue != "" {
			st.Reason = "suspended until Kueue admits it to queue " + j.queue
		}
		return st, nil
	}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning {
			st.Phase = runner.Running
			return st, nil
		}
	}
	for _, p := range pods {
		if p.Status.Phase == corev1.PodFailed {
			// The Job fails next (backoffLimit 0); report it running until then.
			st.Phase = runner.Running
			return st, nil
		}
	}
	st.Phase = runner.Pending
	st.Reason = "waiting for its pods"
	for _, p := range pods {
		if why := pendingReason(p); why != "" {
			st.Reason = p.Name + ": " + why
			break
		}
	}
	return st, nil
}

func dedupe(s []string) []string {
	sort.Strings(s)
	out := s[:0]
	for i, x := range s {
		if i == 0 || x != s[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// pendingReason says why a pod has not started: unschedulable, pulling,
// an image that cannot be pulled, a missing Secret.
func pendingReason(p corev1.Pod) string {
	for _, cs := range p.Status.ContainerStatuses {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "ContainerCreating" {
			return strings.TrimSuffix(w.Reason+": "+w.Message, ": ")
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			return strings.TrimSuffix(c.Reason+": "+c.Message, ": ")
		}
	}
	return ""
}

// podFailures says why the pods of a failed Job failed: evicted,
// preempted, OOM-killed, an exit code.
func podFailures(pods []corev1.Pod) string {
	var out []string
	for _, p := range pods {
		var why []string
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
				why = append(why, strings.TrimSuffix(c.Reason+": "+c.Message, ": "))
			}
		}
		if p.Status.Reason != "" {
			why = append(why, strings.TrimSuffix(p.Status.Reason+": "+p.Status.Message, ": "))
		}
		for _, cs := range p.Status.ContainerStatuses {
			if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
				s := fmt.Sprintf("%s (exit code %d)", t.Reason, t.ExitCode)
				if t.Signal != 0 {
					s += fmt.Sprintf(", signal %d", t.Signal)
				}
				if t.Message != "" {
					s += ": " + t.Message
				}
				why = append(why, s)
			}
		}
		if len(why) > 0 {
			out = append(out, "pod "+p.Name+": "+strings.Join(why, "; "))
		}
	}
	return strings.Join(out, "; ")
}

// Cancel deletes the Job and its pods.
func (j *kjob) Cancel(ctx context.Context) error { return j.delete(ctx) }

func (j *kjob) delete(ctx context.Context) error {
	bg := metav1.DeletePropagationBackground
	err := j.r.cfg.Client.BatchV1().Jobs(j.r.cfg.Namespace).Delete(ctx, j.name, metav1.DeleteOptions{PropagationPolicy: &bg})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete %s: %w", j.ID(), err)
	}
	if j.service {
		// Owned by the Job, so collected with it; deleted here too for
		// clusters without the garbage collector's help (and fakes).
		err := j.r.cfg.Client.CoreV1().Services(j.r.cfg.Namespace).Delete(ctx, j.name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("delete Service %s/%s: %w", j.r.cfg.Namespace, j.name, err)
		}
	}
	return nil
}

// Logs returns the end of each pod's log.
func (j *kjob) Logs(ctx context.Context, lines int) string {
	pods, err := j.pods(ctx)
	if err != nil {
		return ""
	}
	n := int64(lines)
	var parts []string
	for i, p := range pods {
		if i == 4 {
			parts = append(parts, fmt.Sprintf("(%d more pods)", len(pods)-i))
			break
		}
		raw, err := j.r.cfg.Client.CoreV1().Pods(j.r.cfg.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: containerName, TailLines: &n}).DoRaw(ctx)
		if err != nil {
			parts = append(parts, fmt.Sprintf("pod %s: no log (%v)", p.Name, err))
			continue
		}
		if s := strings.TrimSpace(string(raw)); s != "" {
			parts = append(parts, fmt.Sprintf("pod %s:\n%s", p.Name, s))
		}
	}
	return strings.Join(parts, "\n")
}

// Finish deletes a succeeded Job unless KeepJobs; a failed one stays.
func (j *kjob) Finish(ctx context.Context, succeeded bool) error {
	if !succeeded || j.r.cfg.KeepJobs {
		return nil
	}
	return j.delete(ctx)
}
