package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"gocloud.dev/blob"

	"github.com/marin-go/marin/host/executor"
	"github.com/marin-go/marin/host/graph"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
	"github.com/marin-go/marin/plugins/storage/faultblob"
	"github.com/marin-go/marin/plugins/storage/storetest"
	"github.com/marin-go/marin/starlib"
)

// The fault-injection sweep of issue 16, in the style of SQLite's I/O-error
// tests: a reduced pipeline (synthetic datasets → tokenize → train with a
// checkpoint → HF export → exact-match eval) runs once without faults,
// counting its storage operations; then, for every operation N of every
// kind and every way it can fail (plugins/storage/faultblob), the pipeline
// runs in a fresh prefix with that one operation failing, then again
// without faults, and the sweep checks:
//
//   - nothing panics;
//   - no step is marked SUCCESS whose outputs differ from the fault-free
//     run's (incomplete or damaged);
//   - after the fault-free rerun, every step succeeded and the outputs and
//     metrics are identical to the fault-free run's;
//   - no temporary file is left behind.
//
// The steps run in this process (the built-in plugins' ops called
// directly, as their gRPC servers would) so that storage.Interpose puts the
// injector under the host and the ops alike.
//
// TestFaultSweepSample runs a fixed sample of fault points (part of the
// suite); BenchmarkFaultSweep runs every point and reports their count and
// the time per point:
//
//	go test -run '^$' -bench FaultSweep -benchtime 1x -timeout 4h ./cmd/marin/

// sweepScript is the reduced pipeline; TOKENIZER is replaced by the
// quickstart tokenizer's absolute path.
const sweepScript = `
tasks = ExecutorStep(name = "documents/sweep_tasks", op = "tasks/generate", config = {
    "seed": 0, "tasks": ["upper"], "pretrain_documents": 24, "lines_per_document": 4, "train": 24, "test": 4,
})
CHAT = ChatFormat(name = "hf_template")
chat_data = default_tokenize(name = "sweep_chat", dataset = output_path_of(tasks, "sft/train"),
                             tokenizer = "TOKENIZER", format = CHAT)
model = default_sft(
    name = "sweep_sft",
    model_config = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                    "num_key_value_heads": 2, "vocab_size": 272, "max_position_embeddings": 64, "tie_word_embeddings": True},
    sft_config = SimpleSFTConfig(
        data_config = chat_data, tokenizer = "TOKENIZER", max_seq_len = 32, train_batch_size = 2,
        num_train_steps = 4, learning_rate = 1e-2, warmup = 0, lr_schedule = "constant", seed = 0,
        steps_per_checkpoint = 2, steps_per_hf_export = 4,
    ),
)
ev = ExecutorStep(name = "eval/sweep", op = "eval/exact_match", config = {
    "model": output_path_of(model), "data": output_path_of(tasks, "sft/test"), "format": CHAT, "max_new_tokens": 3,
})
executor_main(ev)
`

// inProcess serves ops with the built-in plugins' own functions.
type inProcess struct {
	ops    map[string]sdk.Op
	refs   map[string]executor.PluginRef
	mu     sync.Mutex
	panics []string
}

func newInProcess() *inProcess {
	r := &inProcess{ops: map[string]sdk.Op{}, refs: map[string]executor.PluginRef{}}
	for _, p := range builtinPlugins() {
		for name, op := range p.Ops {
			r.ops[name] = op
			r.refs[name] = executor.PluginRef{Name: p.Name, Kind: string(p.Kind), Version: p.Version, Path: "builtin"}
		}
	}
	return r
}

func (r *inProcess) Resolve(op string) (executor.PluginRef, error) {
	ref, ok := r.refs[op]
	if !ok {
		return executor.PluginRef{}, fmt.Errorf("no built-in plugin serves op %q", op)
	}
	return ref, nil
}

type discard struct{}

func (discard) Progress(float64, float64, string, string) {}
func (discard) Log(string, string, ...string)             {}

func (r *inProcess) Run(ctx context.Context, req executor.RunRequest, _ func(executor.Event)) (err error) {
	raw, err := json.Marshal(req.Config)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	cfg := map[string]any{}
	if err := dec.Decode(&cfg); err != nil {
		return err
	}
	defer func() {
		if p := recover(); p != nil {
			r.mu.Lock()
			r.panics = append(r.panics, fmt.Sprintf("%s: %v\n%s", req.StepName, p, debug.Stack()))
			r.mu.Unlock()
			err = fmt.Errorf("op panicked: %v", p)
		}
	}()
	return r.ops[req.Op].Run(ctx, &sdk.Request{
		Op: req.Op, StepName: req.StepName, Config: cfg, ConfigJSON: raw,
		OutputPath: req.OutputPath, Prefix: req.Prefix, Attempt: req.Attempt, LogLevel: "error",
	}, discard{})
}

// sweep is the pipeline and the fault-free run it is compared with.
type sweep struct {
	script string
	runner *inProcess
	in     *faultblob.Injector
	counts map[faultblob.Op]int64
	want   map[string]string // rel path → digest of the fault-free output
	took   time.Duration
	// bucket, when set ("s3://name", "gs://name"), holds the prefixes
	// instead of local temporary directories.
	bucket string
	n      int
}

// fresh returns a new empty prefix and the key prefix the injector limits
// itself to.
func (s *sweep) fresh(t testing.TB) (prefix, only string) {
	if s.bucket == "" {
		p := t.TempDir()
		return p, strings.TrimPrefix(p, "/")
	}
	s.n++
	key := fmt.Sprintf("sweep-%d", s.n)
	return s.bucket + "/" + key, key
}

func newSweep(t testing.TB) *sweep { return newSweepIn(t, "") }

// newSweepIn is newSweep with the prefixes in bucket ("": local).
func newSweepIn(t testing.TB, bucket string) *sweep {
	t.Helper()
	tok, err := filepath.Abs("../../experiments/quickstart/tokenizer")
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "sweep.star")
	if err := os.WriteFile(script, []byte(strings.ReplaceAll(sweepScript, "TOKENIZER", tok)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MARIN_CACHE_DIR", t.TempDir())
	t.Setenv(storage.ScratchDirEnv, t.TempDir())
	s := &sweep{script: script, runner: newInProcess(), in: faultblob.New(), bucket: bucket}
	restore := storage.Interpose(func(_ string, b *blob.Bucket) *blob.Bucket { return s.in.Wrap(b) })
	t.Cleanup(restore)

	prefix, only := s.fresh(t)
	start := time.Now()
	s.in.Only(only)
	s.in.Reset()
	if err := s.run(prefix); err != nil {
		t.Fatalf("fault-free run: %v", err)
	}
	s.took = time.Since(start)
	s.counts = s.in.Counts()
	s.want = outputs(t, prefix)
	return s
}

// run runs the pipeline under prefix in this process.
func (s *sweep) run(prefix string) error {
	res, err := starlib.ExecFile(s.script, nil)
	if err != nil {
		return err
	}
	p, err := storage.NormalizeURL(prefix)
	if err != nil {
		return err
	}
	plan, err := graph.Build(p, res.Roots)
	if err != nil {
		return err
	}
	_, err = executor.Run(context.Background(), plan, executor.Options{
		Runner: s.runner, Holder: "sweep", MaxConcurrent: 1, DefaultBackend: "cpu",
		// No heartbeats during a run: the operations counted are the
		// pipeline's own, the same in every run.
		Heartbeat: time.Hour, StaleAfter: 2 * time.Hour, ScriptName: s.script,
	})
	return err
}

// kinds lists the ways op can fail on the sweep's store. A torn write (half
// an object committed, then an error) is what a file system without atomic
// commits leaves; S3 and GCS commit an upload whole or not at all, so on a
// bucket the sweep does not inject one.
func (s *sweep) kinds(op faultblob.Op) []faultblob.Kind {
	var out []faultblob.Kind
	for _, k := range faultblob.Kinds(op) {
		if k == faultblob.TornWrite && s.bucket != "" {
			continue
		}
		out = append(out, k)
	}
	return out
}

// points lists every fault point of the fault-free run.
func (s *sweep) points() []faultblob.Fault {
	var out []faultblob.Fault
	for _, op := range faultblob.Ops {
		for n := int64(1); n <= s.counts[op]; n++ {
			for _, k := range s.kinds(op) {
				out = append(out, faultblob.Fault{Op: op, N: n, Kind: k})
			}
		}
	}
	return out
}

// check runs the pipeline with f, then without faults, and reports what
// the sweep forbids.
func (s *sweep) check(t testing.TB, f faultblob.Fault) {
	prefix, only := s.fresh(t)
	s.in.Only(only)
	if err := s.in.Arm(f); err != nil {
		t.Fatal(err)
	}
	ferr := s.run(prefix)
	fired := s.in.Fired()
	s.in.Reset()
	s.noPanics(t, f)
	if len(fired) == 0 {
		// The faulted run took another path (fewer operations of this
		// kind before it stopped); nothing was injected, so it must have
		// succeeded like the fault-free one.
		if ferr != nil {
			t.Errorf("%v: never fired, yet the run failed: %v", f, ferr)
		}
	}
	got := outputs(t, prefix)
	for _, step := range succeeded(t, prefix) {
		for rel, sum := range s.want {
			if strings.HasPrefix(rel, step+"/") && got[rel] != sum {
				t.Errorf("%v (hit %s): step %s is SUCCESS but its %s is %s, the fault-free run's %s", f, keyOf(fired), step, rel, orMissing(got[rel]), sum)
			}
		}
	}
	if err := s.run(prefix); err != nil {
		t.Errorf("%v (hit %s): the fault-free rerun failed: %v", f, keyOf(fired), err)
		return
	}
	s.noPanics(t, f)
	got = outputs(t, prefix)
	for rel, sum := range s.want {
		if got[rel] != sum {
			t.Errorf("%v (hit %s): after the rerun %s is %s, the fault-free run's %s", f, keyOf(fired), rel, orMissing(got[rel]), sum)
		}
	}
	for rel := range got {
		if _, ok := s.want[rel]; !ok {
			t.Errorf("%v (hit %s): after the rerun %s exists, which the fault-free run has not", f, keyOf(fired), rel)
		}
	}
}

func orMissing(s string) string {
	if s == "" {
		return "missing"
	}
	return s
}

func keyOf(ev []faultblob.Event) string {
	if len(ev) == 0 {
		return "nothing"
	}
	return ev[0].Key
}

func (s *sweep) noPanics(t testing.TB, f faultblob.Fault) {
	s.runner.mu.Lock()
	defer s.runner.mu.Unlock()
	for _, p := range s.runner.panics {
		t.Errorf("%v: panic in %s", f, p)
	}
	s.runner.panics = nil
}

// succeeded lists the relative output paths of the steps whose status is
// SUCCESS.
func succeeded(t testing.TB, prefix string) []string {
	var out []string
	if !storage.IsLocal(prefix) {
		ents, err := storage.List(context.Background(), prefix+"/", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			rel := strings.TrimPrefix(e.URL, prefix+"/")
			if strings.Count(rel, "/") != 2 || !strings.HasSuffix(rel, "/"+executor.StatusFile) {
				continue
			}
			dir := strings.TrimSuffix(e.URL, "/"+executor.StatusFile)
			h, err := executor.ReadStatus(context.Background(), dir)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(h); n > 0 && h[n-1].Status == executor.StatusSuccess {
				out = append(out, strings.TrimPrefix(dir, prefix+"/"))
			}
		}
		return out
	}
	m, _ := filepath.Glob(filepath.Join(prefix, "*", "*", executor.StatusFile))
	for _, p := range m {
		dir := filepath.Dir(p)
		h, err := executor.ReadStatus(context.Background(), dir)
		if err != nil {
			t.Fatal(err)
		}
		if n := len(h); n > 0 && h[n-1].Status == executor.StatusSuccess {
			rel, _ := filepath.Rel(prefix, dir)
			out = append(out, filepath.ToSlash(rel))
		}
	}
	return out
}

// outputs digests every file under prefix that a run must reproduce:
// everything but the executor's own records (status and info files,
// experiment records), with the parts that depend on time (timestamps,
// throughput) and on the prefix's location left out. Temporary files and
// lease files count as outputs, so one left behind is a difference.
func outputs(t testing.TB, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	keep := func(rel string) bool {
		name := rel[strings.LastIndex(rel, "/")+1:]
		return name != executor.StatusFile && name != executor.InfoFile && !strings.HasPrefix(rel, "experiments/")
	}
	if !storage.IsLocal(prefix) {
		// An object store has no temporary files: a write is visible
		// whole or not at all.
		ctx := context.Background()
		ents, err := storage.List(ctx, prefix+"/", "")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			rel := strings.TrimPrefix(e.URL, prefix+"/")
			if e.IsDir || !keep(rel) {
				continue
			}
			raw, err := storage.ReadAll(ctx, e.URL)
			if err != nil {
				t.Fatal(err)
			}
			out[rel] = digestOutput(prefix, rel, raw)
		}
		return out
	}
	err := filepath.WalkDir(prefix, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(prefix, p)
		rel = filepath.ToSlash(rel)
		if !keep(rel) {
			return nil
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = digestOutput(prefix, rel, raw)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// digestOutput is the digest of output rel's content raw, without what
// depends on time and on the prefix's location.
func digestOutput(prefix, rel string, raw []byte) string {
	name := rel[strings.LastIndex(rel, "/")+1:]
	raw = bytes.ReplaceAll(raw, []byte(prefix), []byte("<prefix>"))
	switch {
	case name == "metrics.jsonl":
		raw = stableMetrics(raw)
	case name == "metadata.json" && strings.Contains(rel, "/checkpoints/"):
		raw = dropKeys(raw, "timestamp", "extra.elapsed_seconds")
	case name == "results.json":
		raw = dropKeys(raw, "seconds")
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// stableMetrics keeps the numbers of metrics.jsonl that must not depend on
// timing, bit for bit.
func stableMetrics(raw []byte) []byte {
	var b bytes.Buffer
	for _, line := range bytes.Split(bytes.TrimSpace(raw), []byte("\n")) {
		var r struct {
			Step     int64    `json:"step"`
			Loss     float64  `json:"loss"`
			LR       float64  `json:"lr"`
			GradNorm float64  `json:"grad_norm"`
			EvalLoss *float64 `json:"eval_loss"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			fmt.Fprintf(&b, "unparseable %q\n", line)
			continue
		}
		fmt.Fprintf(&b, "%d %x %x %x", r.Step, math.Float64bits(r.Loss), math.Float64bits(r.LR), math.Float64bits(r.GradNorm))
		if r.EvalLoss != nil {
			fmt.Fprintf(&b, " %x", math.Float64bits(*r.EvalLoss))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// dropKeys removes keys (dotted paths into nested objects) from a JSON
// object.
func dropKeys(raw []byte, keys ...string) []byte {
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return raw // damaged: compared as it is
	}
	for _, k := range keys {
		obj := m
		path := strings.Split(k, ".")
		for _, p := range path[:len(path)-1] {
			obj, _ = obj[p].(map[string]any)
		}
		delete(obj, path[len(path)-1])
	}
	out, _ := json.Marshal(m)
	return out
}

// samplePoints picks fault points spread over every operation kind and fault
// kind: the first and last operation of each kind and a few between.
func samplePoints(points []faultblob.Fault, counts map[faultblob.Op]int64) []faultblob.Fault {
	var out []faultblob.Fault
	for _, op := range faultblob.Ops {
		n := counts[op]
		if n == 0 {
			continue
		}
		kinds := faultblob.Kinds(op)
		for i, at := range []int64{1, n/3 + 1, 2*n/3 + 1, n} {
			out = append(out, faultblob.Fault{Op: op, N: at, Kind: kinds[i%len(kinds)]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	uniq := out[:0]
	for i, f := range out {
		if i == 0 || f != out[i-1] {
			uniq = append(uniq, f)
		}
	}
	return uniq
}

func TestFaultSweepSample(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the reduced pipeline about forty times")
	}
	s := newSweep(t)
	pts := s.points()
	sel := samplePoints(pts, s.counts)
	t.Logf("fault-free run: %s, operations %v; %d fault points in all, checking %d", s.took.Round(time.Millisecond), s.counts, len(pts), len(sel))
	for _, f := range sel {
		s.check(t, f)
	}
}

// TestFaultSweepObjectStores is TestFaultSweepSample with the prefixes in
// a bucket of the test S3 server and of the GCS emulator (storetest): the
// first operation of each kind fails the first way it can, the last one
// the last way (BenchmarkFaultSweep with MARIN_SWEEP_STORE sweeps all).
func TestFaultSweepObjectStores(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the reduced pipeline many times")
	}
	storetest.All(t, func(t *testing.T, st *storetest.Store) {
		s := newSweepIn(t, st.URL)
		pts := s.points()
		var sel []faultblob.Fault
		for _, op := range faultblob.Ops {
			if n := s.counts[op]; n > 0 {
				kinds := s.kinds(op)
				sel = append(sel, faultblob.Fault{Op: op, N: 1, Kind: kinds[0]}, faultblob.Fault{Op: op, N: n, Kind: kinds[len(kinds)-1]})
			}
		}
		t.Logf("fault-free run on %s: %s, operations %v; %d fault points in all, checking %d", st.Scheme, s.took.Round(time.Millisecond), s.counts, len(pts), len(sel))
		for _, f := range sel {
			s.check(t, f)
		}
	})
}

// BenchmarkFaultSweep is the whole sweep, every fault point once per
// iteration; it reports the number of points and the time per point.
//
//	go test -run '^$' -bench FaultSweep -benchtime 1x -timeout 4h ./cmd/marin/
//
// MARIN_SWEEP_STORE=s3 or gs sweeps a bucket on the test object stores
// (storetest) instead of local directories.
func BenchmarkFaultSweep(b *testing.B) {
	bucket := ""
	switch v := os.Getenv("MARIN_SWEEP_STORE"); v {
	case "":
	case "s3":
		bucket = storetest.S3(b).URL
	case "gs":
		bucket = storetest.GCS(b).URL
	default:
		b.Fatalf("MARIN_SWEEP_STORE=%q: want s3 or gs", v)
	}
	s := newSweepIn(b, bucket)
	pts := s.points()
	b.Logf("fault-free run: %s, operations %v; %d fault points", s.took.Round(time.Millisecond), s.counts, len(pts))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		for j, f := range pts {
			s.check(b, f)
			if (j+1)%100 == 0 {
				b.Logf("%d/%d fault points, %s", j+1, len(pts), time.Since(start).Round(time.Second))
			}
		}
		b.Logf("swept %d fault points in %s", len(pts), time.Since(start).Round(time.Second))
	}
	b.ReportMetric(float64(len(pts)), "points")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N*len(pts)), "s/point")
}
