package main

import (
	"bytes"
	"context"
	"encoding/json"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/marin-go/marin/plugins/storage"
	"github.com/marin-go/marin/plugins/storage/storetest"
)

// storeScript is the reduced quickstart (quickScript) with fewer training
// steps: the same steps, every op reading and writing the bucket,
// checkpoints every 50 pretraining steps and exports, in less time.
func storeScript(t *testing.T, repo, dir string) string {
	t.Helper()
	p := quickScript(t, repo, dir)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(raw)
	for _, r := range [][2]string{
		{"PRETRAIN_STEPS = 600 if QUICK else 700", "PRETRAIN_STEPS = 200"},
		{"SFT_STEPS = 400 if QUICK else 600", "SFT_STEPS = 100"},
	} {
		if !strings.Contains(s, r[0]) {
			t.Fatalf("experiments/quickstart.star has no line %q", r[0])
		}
		s = strings.Replace(s, r[0], r[1], 1)
	}
	write(t, p, s)
	return p
}

// stepDirs maps each step name of the quickstart ("eval/quickstart_sft/
// quickstart_heldout_answer") to its output URL under prefix, found by
// listing the bucket for status files.
func stepDirs(t *testing.T, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, err := storage.List(context.Background(), prefix+"/", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		dir, ok := strings.CutSuffix(e.URL, "/.executor_status")
		if !ok || e.IsDir {
			continue
		}
		rel := strings.TrimPrefix(dir, prefix+"/")
		if i := strings.LastIndex(rel, "-"); i > 0 {
			out[rel[:i]] = dir
		}
	}
	return out
}

// plannedSteps counts the steps a dry run of script on prefix lists.
func plannedSteps(t *testing.T, repo string, env []string, script, prefix string) int {
	t.Helper()
	dry := marin(t, repo, env, script, "--prefix", prefix, "--dry-run", "--json")
	if dry.code != 0 {
		t.Fatalf("dry run: exit %d: %s", dry.code, dry.stderr)
	}
	return len(strings.Split(strings.TrimSpace(dry.stdout), "\n"))
}

func readAllURL(t *testing.T, u string) []byte {
	t.Helper()
	raw, err := storage.ReadAll(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func metricsAt(t *testing.T, u string) []metricsRow {
	t.Helper()
	var rows []metricsRow
	for _, line := range bytes.Split(bytes.TrimSpace(readAllURL(t, u)), []byte("\n")) {
		var r metricsRow
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, r)
	}
	return rows
}

func sameMetrics(t *testing.T, what string, got, want []metricsRow) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d metrics rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.Step != g.Step || math.Float64bits(w.Loss) != math.Float64bits(g.Loss) || math.Float64bits(w.GradNorm) != math.Float64bits(g.GradNorm) || w.LR != g.LR {
			t.Fatalf("%s row %d: %+v, uninterrupted run %+v", what, i, g, w)
		}
	}
}

// history returns the statuses of a step's .executor_status, in order.
func history(t *testing.T, out string) string {
	t.Helper()
	var s []string
	for _, line := range bytes.Split(bytes.TrimSpace(readAllURL(t, out+"/.executor_status")), []byte("\n")) {
		var e struct{ Status string }
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		s = append(s, e.Status)
	}
	return strings.Join(s, ",")
}

// TestQuickstartOnObjectStores runs the quickstart's steps with --prefix
// on the S3 server and on the GCS emulator (storetest): the run completes
// with every output in the bucket, a rerun skips everything, generate
// reads the export from the bucket, a pretraining step killed while
// uploading a checkpoint resumes from the last complete one with the
// uninterrupted run's losses, and three marin processes racing on one
// prefix run each step once. No credential reaches the bucket's records.
func TestQuickstartOnObjectStores(t *testing.T) {
	if testing.Short() {
		t.Skip("trains small models several times")
	}
	repo, _ := filepath.Abs("../..")
	script := storeScript(t, repo, t.TempDir())
	storetest.All(t, func(t *testing.T, s *storetest.Store) {
		ctx := context.Background()
		// Keep caches and scratch out of the repository (marin runs with
		// HOME there).
		local := []string{"MARIN_CACHE_DIR=" + t.TempDir(), "MARIN_SCRATCH_DIR=" + t.TempDir()}
		env := append(append([]string{}, s.Env...), local...)

		// 1. The whole run. On S3 the prefix carries the endpoint as
		// query options and the environment has only the keys.
		prefix := s.URL + "/run"
		nSteps := plannedSteps(t, repo, env, script, prefix)
		arg, runEnv := prefix, env
		if s.Scheme == "s3" {
			arg = prefix + "?endpoint=" + s.Endpoint + "&use_path_style=true&region=us-east-1"
			runEnv = append(append([]string{}, env...), "AWS_ENDPOINT_URL=", "AWS_REGION=")
		}
		start := time.Now()
		r := marin(t, repo, runEnv, script, "--prefix", arg)
		if r.code != 0 {
			t.Fatalf("exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
		}
		t.Logf("quickstart on %s: %s", prefix, time.Since(start).Round(time.Second))
		dirs := stepDirs(t, prefix)
		if len(dirs) != nSteps {
			t.Fatalf("step outputs in the bucket: %v", dirs)
		}
		pre, sft := dirs["checkpoints/quickstart_pretrain"], dirs["checkpoints/quickstart_sft"]
		for _, f := range []string{
			pre + "/metrics.jsonl", pre + "/hf/step-200/config.json", pre + "/checkpoints/step-200/metadata.json",
			sft + "/hf/step-100/model.safetensors", sft + "/hf/step-100/marin.json", sft + "/checkpoints/step-100/metadata.json",
			dirs["tokenized/quickstart_chat"] + "/manifest.json", dirs["eval/quickstart_after_sft"] + "/results.json",
			dirs["eval/quickstart_after_sft"] + "/.executor_status",
		} {
			if ok, err := storage.Exists(ctx, f); err != nil || !ok {
				t.Errorf("%s: exists %v, %v", f, ok, err)
			}
		}
		// Pretraining checkpointed at 50, 100, 150 and 200: all permanent.
		for _, n := range []string{"50", "100", "150"} {
			if ok, _ := storage.Exists(ctx, pre+"/checkpoints/step-"+n+"/metadata.json"); !ok {
				t.Errorf("checkpoint step-%s missing", n)
			}
		}
		// Secrets stay out of every record in the bucket.
		secret, key := os.Getenv(storetest.S3SecretKeyEnv), os.Getenv(storetest.S3AccessKeyEnv)
		recs, err := storage.List(ctx, prefix+"/", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range recs {
			base := e.URL[strings.LastIndex(e.URL, "/")+1:]
			if strings.HasPrefix(base, ".executor") || strings.HasSuffix(base, ".json") && strings.Contains(e.URL, "/experiments/") {
				raw := string(readAllURL(t, e.URL))
				if strings.Contains(raw, secret) || strings.Contains(raw, key) {
					t.Errorf("%s holds a credential", e.URL)
				}
				if strings.Contains(raw, "?endpoint=") {
					t.Errorf("%s records the prefix's options in a path: %s", e.URL, raw)
				}
			}
		}
		want := map[string][]metricsRow{"pretrain": metricsAt(t, pre+"/metrics.jsonl"), "sft": metricsAt(t, sft+"/metrics.jsonl")}
		results := string(readAllURL(t, dirs["eval/quickstart_after_sft"]+"/results.json"))

		// 2. A rerun skips every step.
		dry := marin(t, repo, env, script, "--prefix", prefix, "--dry-run", "--json")
		if dry.code != 0 {
			t.Fatalf("dry run: exit %d: %s", dry.code, dry.stderr)
		}
		for _, line := range strings.Split(strings.TrimSpace(dry.stdout), "\n") {
			var d struct{ Name, Decision string }
			if err := json.Unmarshal([]byte(line), &d); err != nil {
				t.Fatalf("%v: %s", err, line)
			}
			if d.Decision != "skip" {
				t.Errorf("after a complete run %s is %q, want skip", d.Name, d.Decision)
			}
		}
		if r := marin(t, repo, env, script, "--prefix", prefix); r.code != 0 {
			t.Fatalf("rerun: exit %d: %s", r.code, r.stderr)
		}
		for name, out := range dirs {
			if h := history(t, out); h != "RUNNING,SUCCESS" {
				t.Errorf("%s after a rerun: history %s, want RUNNING,SUCCESS", name, h)
			}
		}

		// 3. generate reads the fine-tuned export from the bucket.
		g := marin(t, repo, env, "generate", "--model", sft, "--chat", "--prompt", "upper abc", "--max-new-tokens", "12")
		if g.code != 0 || strings.TrimSpace(g.stdout) == "" {
			t.Fatalf("generate --model %s: exit %d: %q %s", sft, g.code, g.stdout, g.stderr)
		}

		// 4. Killed while uploading a checkpoint. A proxy between marin and
		// the store kills marin (host and plugins) when the upload of
		// pretraining's step-100 reaches its commit markers: the data
		// files are in the bucket, config.json and metadata.json are not.
		t.Run("killed mid-checkpoint", func(t *testing.T) {
			var armed atomic.Bool
			armed.Store(true)
			var pgid atomic.Int64
			killed := make(chan struct{})
			var once sync.Once
			proxy := s.Proxy(t, func(r *http.Request) int {
				// The object: the path on S3, the name parameter of a GCS upload.
				obj := r.URL.Path
				if n := r.URL.Query().Get("name"); n != "" {
					obj = n
				}
				if armed.Load() && strings.Contains(obj, "quickstart_pretrain") && strings.HasSuffix(obj, "/checkpoints/step-100/config.json") &&
					r.Method != http.MethodGet && r.Method != http.MethodHead {
					once.Do(func() {
						_ = syscall.Kill(-int(pgid.Load()), syscall.SIGKILL)
						close(killed)
					})
					return http.StatusServiceUnavailable
				}
				return 0
			})
			penv := append([]string{}, env...)
			if s.Scheme == "s3" {
				penv = append(penv, "AWS_ENDPOINT_URL=http://"+proxy)
			} else {
				penv = append(penv, "STORAGE_EMULATOR_HOST="+proxy)
			}
			prefix2 := s.URL + "/killed"
			cmd := exec.Command(marinBin, script, "--prefix", prefix2)
			cmd.Dir = repo
			cmd.Env = append(append(os.Environ(), "MARIN_PREFIX=", "MARIN_PLUGIN_PATH=", "HOME="+repo), penv...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			pgid.Store(int64(cmd.Process.Pid))
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case <-killed:
				<-done
			case err := <-done:
				t.Fatalf("marin finished (%v) without reaching the checkpoint upload:\n%s", err, out.String())
			case <-time.After(10 * time.Minute):
				_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				t.Fatalf("no upload of checkpoint step-100 within 10 minutes:\n%s", out.String())
			}
			armed.Store(false)
			pre2 := stepDirs(t, prefix2)["checkpoints/quickstart_pretrain"]
			if ok, _ := storage.Exists(ctx, pre2+"/checkpoints/step-100/model.safetensors"); !ok {
				t.Fatal("the kill came before step-100's data files were uploaded")
			}
			if ok, _ := storage.Exists(ctx, pre2+"/checkpoints/step-100/metadata.json"); ok {
				t.Fatal("step-100 has its commit marker: the kill came too late")
			}
			r := marin(t, repo, penv, script, "--prefix", prefix2)
			if r.code != 0 {
				t.Fatalf("rerun: exit %d:\n%s\n%s", r.code, r.stdout, r.stderr)
			}
			mustContain(t, r.stdout+r.stderr, "skipping incomplete checkpoint", "step-100", "resuming from "+pre2+"/checkpoints/step-50")
			d2 := stepDirs(t, prefix2)
			sameMetrics(t, "pretrain", metricsAt(t, d2["checkpoints/quickstart_pretrain"]+"/metrics.jsonl"), want["pretrain"])
			sameMetrics(t, "sft", metricsAt(t, d2["checkpoints/quickstart_sft"]+"/metrics.jsonl"), want["sft"])
			if got := string(readAllURL(t, d2["eval/quickstart_after_sft"]+"/results.json")); !sameAccuracy(got, results) {
				t.Errorf("results after the kill and rerun %s, uninterrupted %s", got, results)
			}
		})

		// 5. Three marin processes race on one prefix: each step runs once.
		t.Run("three processes", func(t *testing.T) {
			prefix3 := s.URL + "/race"
			var wg sync.WaitGroup
			res := make([]result, 3)
			for i := range res {
				wg.Add(1)
				go func() {
					defer wg.Done()
					res[i] = marin(t, repo, env, script, "--prefix", prefix3)
				}()
			}
			wg.Wait()
			for i, r := range res {
				if r.code != 0 {
					t.Fatalf("process %d: exit %d:\n%s\n%s", i, r.code, r.stdout, r.stderr)
				}
			}
			d3 := stepDirs(t, prefix3)
			if len(d3) != nSteps {
				t.Fatalf("step outputs: %v", d3)
			}
			for name, out := range d3 {
				if h := history(t, out); h != "RUNNING,SUCCESS" {
					t.Errorf("%s: history %s, want one RUNNING,SUCCESS", name, h)
				}
			}
			sameMetrics(t, "pretrain", metricsAt(t, d3["checkpoints/quickstart_pretrain"]+"/metrics.jsonl"), want["pretrain"])
		})
	})
}

// sameAccuracy compares the counts of two results.json.
func sameAccuracy(a, b string) bool {
	var x, y evalResults
	return json.Unmarshal([]byte(a), &x) == nil && json.Unmarshal([]byte(b), &y) == nil && x.Correct == y.Correct && x.Examples == y.Examples
}
