package train_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/marin-go/marin/backends/cpu"
	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/train"
)

var errKilled = errors.New("killed")

func runJob(t *testing.T, cfg *train.Config, out string, afterStep func(int64) error) (*train.Job, error) {
	t.Helper()
	c := *cfg
	j := &train.Job{Config: &c, Out: out, PeakFLOPS: 1e11, NewEngine: cpu.NewEngine}
	train.SetAfterStep(j, afterStep)
	return j, j.Run(context.Background())
}

func readRows(t *testing.T, out string) []train.MetricsRow {
	t.Helper()
	rows, err := train.ReadMetrics(filepath.Join(out, train.MetricsName))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// sameCurve compares the numbers that must not depend on timing, bit for
// bit.
func sameCurve(t *testing.T, want, got []train.MetricsRow) {
	t.Helper()
	if len(want) != len(got) {
		t.Fatalf("%d metrics rows, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if w.Step != g.Step || math.Float64bits(w.Loss) != math.Float64bits(g.Loss) ||
			math.Float64bits(w.LR) != math.Float64bits(g.LR) || math.Float64bits(w.GradNorm) != math.Float64bits(g.GradNorm) ||
			w.TrainedTokens != g.TrainedTokens || (w.EvalLoss == nil) != (g.EvalLoss == nil) ||
			(w.EvalLoss != nil && math.Float64bits(*w.EvalLoss) != math.Float64bits(*g.EvalLoss)) {
			t.Fatalf("row %d differs:\n got  %+v\n want %+v", i, g, w)
		}
	}
}

func TestKillAndResumeReproducesTheLossCurve(t *testing.T) {
	root := t.TempDir()
	const steps = 12
	cfg := testConfig(t, root, steps)

	whole := filepath.Join(root, "whole")
	j, err := runJob(t, cfg, whole, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := readRows(t, whole)
	if len(want) != steps {
		t.Fatalf("%d rows, want %d", len(want), steps)
	}
	if !(want[steps-1].Loss < want[0].Loss-0.5) {
		t.Errorf("loss went %.3f → %.3f; want it to fall", want[0].Loss, want[steps-1].Loss)
	}
	evals := 0
	for _, r := range want {
		if r.EvalLoss != nil {
			evals++
			if r.Eval["val"] != *r.EvalLoss {
				t.Errorf("step %d: eval %v, eval_loss %v", r.Step, r.Eval, *r.EvalLoss)
			}
		}
	}
	if evals != 4 { // steps 3, 6, 9, 12
		t.Errorf("%d evaluations, want 4", evals)
	}
	if j.Result.ResumedFrom != 0 || j.Result.FinalEvalLoss == nil {
		t.Errorf("result %+v", j.Result)
	}

	// Killed after step 7 (checkpoints at 4; rows 5..7 written): the rerun
	// resumes from step 4, rewrites rows 5..7 and goes on.
	parts := filepath.Join(root, "parts")
	if _, err := runJob(t, cfg, parts, func(s int64) error {
		if s == 7 {
			return errKilled
		}
		return nil
	}); !errors.Is(err, errKilled) {
		t.Fatalf("first part: %v", err)
	}
	if n := len(readRows(t, parts)); n != 7 {
		t.Fatalf("killed run wrote %d rows, want 7", n)
	}
	// Killed again mid-way through step 10 by cancellation.
	ctx, cancel := context.WithCancel(context.Background())
	c := *cfg
	j2 := &train.Job{Config: &c, Out: parts, PeakFLOPS: 1e11, NewEngine: cpu.NewEngine}
	train.SetAfterStep(j2, func(s int64) error {
		if s == 9 {
			cancel()
		}
		return nil
	})
	if err := j2.Run(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("second part: %v", err)
	}
	if j2.Result.ResumedFrom != 4 {
		t.Errorf("second part resumed from %d, want 4", j2.Result.ResumedFrom)
	}
	j3, err := runJob(t, cfg, parts, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j3.Result.ResumedFrom != 8 {
		t.Errorf("third part resumed from %d, want 8", j3.Result.ResumedFrom)
	}
	sameCurve(t, want, readRows(t, parts))

	// The final weights and exports are identical too.
	for _, f := range []string{"hf/step-12/model.safetensors", "hf/step-6/model.safetensors", "checkpoints/step-12/model.safetensors", "checkpoints/step-12/optimizer.bin"} {
		a, err1 := os.ReadFile(filepath.Join(whole, f))
		b, err2 := os.ReadFile(filepath.Join(parts, f))
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the runs (%v, %v)", f, err1, err2)
		}
	}
	// Checkpoints at 4, 8, 12; exports at 6 and 12.
	for _, d := range []string{"checkpoints/step-4", "checkpoints/step-8", "checkpoints/step-12", "hf/step-6", "hf/step-12"} {
		if _, err := os.Stat(filepath.Join(whole, d, "config.json")); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	// A rerun of a finished run trains nothing and changes nothing.
	j4, err := runJob(t, cfg, whole, nil)
	if err != nil || j4.Result.ResumedFrom != steps {
		t.Fatalf("rerun: %v, resumed from %d", err, j4.Result.ResumedFrom)
	}
	sameCurve(t, want, readRows(t, whole))
}

func TestGradientAccumulationEqualsOneBigBatch(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig(t, root, 3)
	cfg.StepsPerEval, cfg.StepsPerHFExport = 0, 0
	var rows [][]train.MetricsRow
	var params []*llama.Params
	for _, micro := range []int{8, 2, 1} {
		c := *cfg
		c.MicroBatchSize = micro
		out := filepath.Join(root, "micro", string(rune('0'+micro)))
		if _, err := runJob(t, &c, out, nil); err != nil {
			t.Fatal(err)
		}
		rows = append(rows, readRows(t, out))
		p, _, err := weights.LoadDir(filepath.Join(out, "checkpoints", "step-3"))
		if err != nil {
			t.Fatal(err)
		}
		params = append(params, p)
	}
	for k := 1; k < len(rows); k++ {
		for i := range rows[0] {
			a, b := rows[0][i], rows[k][i]
			if math.Abs(a.Loss-b.Loss) > 1e-5*math.Abs(a.Loss) || math.Abs(a.GradNorm-b.GradNorm) > 1e-4*a.GradNorm || a.TrainedTokens != b.TrainedTokens {
				t.Errorf("micro-batch run %d step %d: loss %v grad norm %v, big batch %v %v", k, a.Step, b.Loss, b.GradNorm, a.Loss, a.GradNorm)
			}
		}
		var maxDiff float64
		for i, v := range params[0].Flat() {
			maxDiff = math.Max(maxDiff, math.Abs(float64(v-params[k].Flat()[i])))
		}
		if maxDiff > 1e-5 {
			t.Errorf("micro-batch run %d: weights differ from the big batch's by up to %g", k, maxDiff)
		}
	}
}

func TestCorruptCheckpointsAreRefused(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig(t, root, 8)
	cfg.StepsPerEval, cfg.StepsPerHFExport = 0, 0
	out := filepath.Join(root, "out")
	if _, err := runJob(t, cfg, out, func(s int64) error {
		if s == 8 {
			return errKilled // killed after the final checkpoint, before success
		}
		return nil
	}); !errors.Is(err, errKilled) {
		t.Fatal(err)
	}
	ck := filepath.Join(out, "checkpoints")
	last := filepath.Join(ck, "step-8")

	damage := func(name string, f func([]byte) []byte) {
		t.Helper()
		p := filepath.Join(last, name)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(root, "backup")
	if err := os.CopyFS(backup, os.DirFS(last)); err != nil {
		t.Fatal(err)
	}
	restore := func() {
		os.RemoveAll(last)
		if err := os.CopyFS(last, os.DirFS(backup)); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name   string
		breakf func()
		want   string
	}{
		{"flipped weight byte", func() { damage("model.safetensors", func(b []byte) []byte { b[len(b)-3] ^= 1; return b }) }, "model.safetensors has sha256"},
		{"truncated optimizer", func() { damage("optimizer.bin", func(b []byte) []byte { return b[:len(b)/2] }) }, "optimizer.bin is"},
		{"missing file", func() {
			os.Remove(filepath.Join(last, "trainer_state.json"))
			os.Remove(filepath.Join(last, "config.json"))
		}, "config.json"},
		{"bad metadata", func() { damage("metadata.json", func(b []byte) []byte { return b[:10] }) }, "metadata.json"},
	}
	for _, c := range cases {
		restore()
		c.breakf()
		_, err := runJob(t, cfg, out, nil)
		if !errors.Is(err, train.ErrCorrupt) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "deleting it resumes from "+filepath.Join(ck, "step-4")) {
			t.Errorf("%s: got %v", c.name, err)
		}
	}
	// Without its commit marker the newest checkpoint is incomplete: it is
	// skipped and the run resumes from step 4.
	restore()
	os.Remove(filepath.Join(last, "metadata.json"))
	j, err := runJob(t, cfg, out, nil)
	if err != nil || j.Result.ResumedFrom != 4 {
		t.Fatalf("incomplete newest checkpoint: %v, resumed from %d", err, j.Result.ResumedFrom)
	}
	if _, err := train.LoadCheckpoint(last); err != nil {
		t.Errorf("step 8 rewritten: %v", err)
	}
}

func TestEpochsResolveFromTheCaches(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig(t, root, 1)
	epochs := 0.2
	cfg.NumTrainSteps, cfg.NumTrainEpochs = nil, &epochs
	cfg.Warmup, cfg.LRSchedule = 0, "linear"
	cfg.StepsPerEval, cfg.StepsPerHFExport, cfg.StepsPerCheckpoint = 0, 0, 0
	data, err := train.OpenData(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	seqs := data.EpochSequences()
	data.Close()
	j, err := runJob(t, cfg, filepath.Join(root, "out"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := int64(math.Ceil(float64(seqs) * epochs / 8))
	if j.Result.NumTrainSteps != want || want < 1 {
		t.Errorf("%d steps for %g epochs of %d sequences at batch 8, want %d", j.Result.NumTrainSteps, epochs, seqs, want)
	}
}

func TestMixtureProportionsOverTenThousandSequences(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig(t, root, 1)
	data, err := train.OpenData(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer data.Close()
	counts := data.ComponentCounts(0, 10000)
	for name, w := range map[string]float64{"a": 0.7, "b": 0.3} {
		got := float64(counts[name]) / 10000
		if math.Abs(got-w) > 0.02 {
			t.Errorf("component %s: %.3f of the sequences, weight %.2f", name, got, w)
		}
	}
	if counts["val"] != 0 {
		t.Errorf("the validation-only component supplied %d training sequences", counts["val"])
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ js, want string }{
		{`{"data":{"components":{}}}`, "data.components: must not be empty"},
		{`{"data":{"components":{"a":{"cache":"x","weight":1}}},"max_seq_len":16,"train_batch_size":4}`, "give one of num_train_steps, num_train_epochs"},
		{`{"data":{"components":{"a":{"cache":"x","weight":1}}},"max_seq_len":16,"train_batch_size":4,"num_train_steps":3}`, "give exactly one model"},
		{`{"data":{"components":{"a":{"cache":"x","weight":0,"validation_only":true}}},"max_seq_len":16,"train_batch_size":4,"num_train_steps":3,"model_name_or_path":"m"}`, "no component has a training weight"},
		{`{"data":{"components":{"a":{"cache":"x","weight":1}},"permutation_type":"linear"},"max_seq_len":16,"train_batch_size":4,"num_train_steps":3,"model_name_or_path":"m"}`, `data.permutation_type: must be one of "feistel"`},
		{`{"data":{"components":{"a":{"cache":"x","weight":1}}},"max_seq_len":16,"train_batch_size":4,"num_train_steps":3,"model_name_or_path":"m","micro_batch_size":3}`, "micro_batch_size: 3 does not divide train_batch_size (4)"},
		{`{"data":{"components":{"a":{"cache":"x","weight":1}}},"max_seq_len":16,"train_batch_size":4,"num_train_steps":3,"model_name_or_path":"m","learnig_rate":1}`, `learnig_rate: unknown key (did you mean "learning_rate"?)`},
	} {
		_, err := train.ParseConfig([]byte(c.js))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", c.js, err, c.want)
		}
	}
}

func TestTemporaryCheckpointsArePruned(t *testing.T) {
	root := t.TempDir()
	cfg := testConfig(t, root, 6)
	cfg.StepsPerEval, cfg.StepsPerHFExport = 0, 0
	cfg.CheckpointMinutes = 1e-9 // a temporary checkpoint after every step
	out := filepath.Join(root, "out")
	var seen [][]int64
	if _, err := runJob(t, cfg, out, func(s int64) error {
		es, err := train.ListCheckpoints(filepath.Join(out, "checkpoints"))
		var steps []int64
		for _, e := range es {
			steps = append(steps, e.Step)
			if e.Step == s && e.Meta.IsTemporary != (s%4 != 0 && s != 6) {
				t.Errorf("step %d: is_temporary %v", s, e.Meta.IsTemporary)
			}
		}
		seen = append(seen, steps)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	want := [][]int64{{1}, {2}, {3}, {4}, {4, 5}, {4, 6}}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("checkpoints after each step %v, want %v", seen, want)
	}
}
