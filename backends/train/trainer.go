package train

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/backends/train/dataloader"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// backendName is the engine's name checkpoints record ("cpu" when unset).
func (j *Job) backendName() string {
	if j.BackendName == "" {
		return "cpu"
	}
	return j.BackendName
}

// Job is one run of the train op. Run calls it with the step's request;
// tests build one directly.
type Job struct {
	Config *Config
	Out    string       // the step's output directory (local)
	Report sdk.Reporter // may be nil
	// Stage, when its output is remote, publishes what the job writes in
	// Out to the step's output URL (see output.go); nil: Out is the output.
	Stage *storage.Stage

	// ActivationBytes bounds the activation memory of one micro-batch when
	// the config does not fix micro_batch_size (0: a quarter of the
	// machine's memory, at most 8 GiB).
	ActivationBytes int64
	// PeakFLOPS is the FLOP/s MFU is measured against (0: measured with a
	// float32 matrix multiply on all threads when the run starts, or
	// $MARIN_CPU_PEAK_GFLOPS).
	PeakFLOPS float64

	// NewEngine makes the engine that runs forward, backward and the AdamW
	// update (nil: the cpu reference, backends/model/llama + backends/model/optim).
	// Another backend (gomlx) plugs in here and keeps this loop's data
	// order, schedule, metrics, checkpoints and exports.
	NewEngine EngineFactory
	// BackendName is recorded in checkpoints (default "cpu").
	BackendName string
	// Profile is how the engine runs the step (nil: float32, one device):
	// with resources.device_memory, the micro-batch is the largest whose
	// memory plan fits it.
	Profile *Profile

	// afterStep, in tests, runs after each step is fully written
	// (metrics, checkpoint, export); an error stops the job there, like a
	// kill.
	afterStep func(step int64) error

	// Filled by Run.
	Result Result

	metricsPublished time.Time
}

// Result says what a run did.
type Result struct {
	ResumedFrom    int64 // the checkpoint step resumed from (0: a fresh start)
	NumTrainSteps  int64
	MicroBatchSize int
	FinalLoss      float64
	FinalEvalLoss  *float64
	TokensPerSec   float64 // mean over this run's steps
	MFU            float64 // mean over this run's steps
	PeakFLOPS      float64
}

type nopReporter struct{}

func (nopReporter) Progress(done, total float64, unit, msg string) {}
func (nopReporter) Log(level, msg string, kv ...string)            {}

func (j *Job) logf(level, format string, args ...any) {
	j.Report.Log(level, fmt.Sprintf(format, args...))
}

// Run trains: it resumes from the newest complete checkpoint under
// {Out}/checkpoints when there is one, else starts from the configured
// model, and runs to num_train_steps writing metrics, checkpoints and
// exports on their cadences and at the end.
func (j *Job) Run(ctx context.Context) error {
	if j.Report == nil {
		j.Report = nopReporter{}
	}
	cfg := j.Config
	if err := os.MkdirAll(j.Out, 0o755); err != nil {
		return fmt.Errorf("train output: %w", err)
	}
	data, err := OpenData(ctx, cfg)
	if err != nil {
		return err
	}
	defer data.Close()
	if err := j.fetchResume(ctx); err != nil {
		return err
	}

	numSteps := int64(0)
	if cfg.NumTrainSteps != nil {
		numSteps = *cfg.NumTrainSteps
	} else {
		seqs := float64(data.EpochSequences()) * *cfg.NumTrainEpochs
		numSteps = int64(math.Ceil(seqs / float64(cfg.TrainBatchSize)))
		j.logf("info", "num_train_epochs %g: %d sequences of %d tokens an epoch, batch %d → %d steps", *cfg.NumTrainEpochs, data.EpochSequences(), cfg.MaxSeqLen, cfg.TrainBatchSize, numSteps)
	}
	j.Result.NumTrainSteps = numSteps

	tok, err := j.tokenizerFiles(ctx, data)
	if err != nil {
		return err
	}

	ckRoot := filepath.Join(j.Out, "checkpoints")
	ck, err := LatestCheckpoint(ckRoot, func(dir string) {
		j.logf("warn", "skipping incomplete checkpoint %s (no metadata.json)", dir)
	})
	if err != nil {
		return err
	}
	// params are the trained weights, or with LoRA the frozen base that
	// adapter applies to.
	var params *llama.Params
	var adapter *lora.Adapter
	var base *baseModel
	var start int64
	backend := j.backendName()
	ts := TrainerState{Seed: cfg.Seed, NumTrainSteps: numSteps, Backend: backend}
	if ck != nil {
		params = ck.Params
		start = ck.Meta.Step
		prev := ck.Trainer()
		ts.MicroBatchSize = prev.MicroBatchSize
		ts.TokensSeen, ts.TrainedTokens, ts.ElapsedSecs = prev.TokensSeen, prev.TrainedTokens, prev.ElapsedSecs
		// A checkpoint another driver wrote may carry no trainer state;
		// the loader position is then the steps taken times the batch.
		if prev.Backend != "" {
			if prev.NumTrainSteps != 0 && prev.NumTrainSteps != numSteps {
				return fmt.Errorf("checkpoint %s was written for %d steps, this run has %d", ck.Dir, prev.NumTrainSteps, numSteps)
			}
			if prev.Seed != cfg.Seed {
				return fmt.Errorf("checkpoint %s was written with seed %d, this run has %d", ck.Dir, prev.Seed, cfg.Seed)
			}
			if want := start * int64(cfg.TrainBatchSize); prev.NextSequence != want {
				return fmt.Errorf("checkpoint %s: loader position %d, but %d steps of %d sequences is %d", ck.Dir, prev.NextSequence, start, cfg.TrainBatchSize, want)
			}
		}
		switch {
		case ck.IsAdapter && cfg.Lora == nil:
			return fmt.Errorf("checkpoint %s holds a LoRA adapter, but this run trains every parameter (no lora config)", ck.Dir)
		case !ck.IsAdapter && cfg.Lora != nil:
			return fmt.Errorf("checkpoint %s holds a whole model, but this run trains a LoRA adapter", ck.Dir)
		case ck.IsAdapter:
			if base, err = j.startingPoint(ctx); err != nil {
				return err
			}
			if err := base.sameAs(prev.LoRABase, ck.Dir); err != nil {
				return err
			}
			params = base.params
			if adapter, err = j.loraAdapter(base, ck); err != nil {
				return err
			}
		}
		j.Result.ResumedFrom = start
		j.logf("info", "resuming from %s (step %d of %d)", j.where(ck.Dir), start, numSteps)
	} else {
		if base, err = j.startingPoint(ctx); err != nil {
			return err
		}
		params = base.params
		switch {
		case cfg.Lora != nil:
			if adapter, err = j.loraAdapter(base, nil); err != nil {
				return err
			}
		case base.adapter != nil:
			j.logf("info", "merging the LoRA adapter %s into its base %s: this run trains every parameter", base.adapterDir, base.dir)
			if params, err = base.adapter.Merge(base.params); err != nil {
				return fmt.Errorf("adapter %s: %w", base.adapterDir, err)
			}
		}
	}
	if adapter != nil {
		ts.LoRABase = &BaseModel{Name: base.name, Fingerprint: base.fingerprint}
	}
	mcfg := params.Config
	if data.Tokenizer.VocabSize > mcfg.VocabSize {
		return fmt.Errorf("the caches' tokenizer %s has %d tokens, the model's vocab_size is %d", data.Tokenizer.Name, data.Tokenizer.VocabSize, mcfg.VocabSize)
	}
	if cfg.MaxSeqLen > mcfg.MaxPositionEmbeddings {
		return fmt.Errorf("max_seq_len %d exceeds the model's max_position_embeddings %d", cfg.MaxSeqLen, mcfg.MaxPositionEmbeddings)
	}
	if start >= numSteps && ck != nil {
		j.logf("info", "checkpoint step %d is the last step: nothing to train", start)
	}

	acfg := optim.DefaultAdamW()
	acfg.WeightDecay = cfg.WeightDecay
	acfg.MaxGradNorm = *cfg.MaxGradNorm
	if j.NewEngine == nil {
		return errors.New("train: no engine (Job.NewEngine is nil)")
	}
	eng, err := j.NewEngine(params, Setup{AdamW: acfg, ZLossWeight: cfg.ZLossWeight, LoRA: adapter, Seed: cfg.Seed})
	if err != nil {
		return err
	}
	defer eng.Close()
	if ck != nil && ck.Optimizer != nil {
		if err := eng.LoadOptimizerState(ck.Optimizer); err != nil {
			return fmt.Errorf("checkpoint %s: %w", ck.Dir, err)
		}
	}
	decay := cfg.Cooldown
	sched, err := optim.NewSchedule(optim.ScheduleConfig{
		LearningRate: cfg.LearningRate, Schedule: cfg.LRSchedule, MinLRRatio: cfg.MinLRRatio,
		Warmup: cfg.Warmup, Decay: &decay,
	}, int(numSteps))
	if err != nil {
		return fmt.Errorf("train config: %w", err)
	}

	B, T := cfg.TrainBatchSize, cfg.MaxSeqLen
	if ts.MicroBatchSize == 0 {
		ts.MicroBatchSize = j.microBatch(mcfg)
	}
	micro := ts.MicroBatchSize
	if B%micro != 0 {
		return fmt.Errorf("micro-batch size %d does not divide train_batch_size %d", micro, B)
	}
	j.Result.MicroBatchSize = micro
	peak := j.PeakFLOPS
	if peak <= 0 {
		peak = eng.PeakFLOPS()
	}
	j.Result.PeakFLOPS = peak

	mw, err := openMetrics(filepath.Join(j.Out, MetricsName), start)
	if err != nil {
		return err
	}
	defer mw.Close()
	if j.remote() {
		// The resume's checkpoint is loaded: scratch needs no copy.
		if err := os.RemoveAll(ckRoot); err != nil {
			return err
		}
		// Rows past the checkpoint are gone from the local file; the
		// remote one follows now, and when this run stops for any reason.
		if err := j.publishMetrics(ctx); err != nil {
			return err
		}
		defer func() {
			if err := j.publishMetrics(context.WithoutCancel(ctx)); err != nil {
				j.logf("warn", "publish metrics: %v", err)
			}
		}()
	}

	j.logf("info", "training %s model (%d parameters) on %s for steps %d..%d: batch %d × %d tokens in micro-batches of %d",
		mcfg.ModelType, mcfg.NumParams(), j.backendName(), start+1, numSteps, B, T, micro)
	if adapter != nil {
		sp := adapter.Spec
		j.logf("info", "LoRA: r %d, alpha %g, dropout %g over %d projections (%s), %d modules_to_save tensors: %d trainable parameters (%.3g%% of %d, frozen: %s)",
			sp.R, sp.Alpha, sp.Dropout, len(adapter.Modules), targetList(sp), len(adapter.Full), adapter.NumParams(),
			100*float64(adapter.NumParams())/float64(mcfg.NumParams()), mcfg.NumParams(), base.name)
	}

	exportOpts := tok.exportOptions(data)
	batch := llama.NewBatch(micro, T)
	seq := dataloader.NewSequence(T)
	full := llama.NewBatch(B, T)
	lastCkpt := time.Now()
	flopsPerToken := 3 * mcfg.FlopsPerToken(T)
	if adapter != nil {
		// Frozen weights skip their gradient: forward and input gradient.
		flopsPerToken = 2 * mcfg.FlopsPerToken(T)
	}
	var sumTPS, sumMFU float64
	var nSteps int
	runStart := time.Now()
	elapsedBefore := ts.ElapsedSecs

	for step := start; step < numSteps; step++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("train step %d: %w", step+1, err)
		}
		t0 := time.Now()
		// The whole batch first, to know the step's trained-token count:
		// every micro-batch's gradient is scaled by 1/total, so the sum is
		// the mean over the whole batch, as one big batch would give.
		g0 := step * int64(B)
		for r := 0; r < B; r++ {
			if err := data.FillTrain(g0+int64(r), full, r, seq); err != nil {
				return fmt.Errorf("train step %d: %w", step+1, err)
			}
		}
		total := full.TrainedCount()
		lr := sched.LR(int(step))
		res, info, err := eng.Step(ctx, full, micro, lr)
		if err != nil {
			return fmt.Errorf("train step %d: %w", step+1, err)
		}
		done := step + 1
		secs := time.Since(t0).Seconds()
		tokens := int64(B * T)
		ts.TokensSeen += tokens
		ts.TrainedTokens += int64(total)
		ts.NextSequence = done * int64(B)
		tps := float64(tokens) / secs
		mfu := 0.0
		if peak > 0 {
			mfu = flopsPerToken * tps / peak
		}
		sumTPS += tps
		sumMFU += mfu
		nSteps++
		row := MetricsRow{
			Step: done, Loss: res.ObjectiveMean(), LR: lr, GradNorm: info.GradNorm,
			Tokens: tokens, TrainedTokens: int64(total), TokensPerSecond: tps, MFU: mfu, StepSeconds: secs,
		}
		if cfg.ZLossWeight > 0 && res.Count > 0 {
			z := res.ZLoss / float64(res.Count)
			row.ZLoss = &z
		}
		if math.IsNaN(row.Loss) || math.IsInf(row.Loss, 0) {
			return fmt.Errorf("train step %d: the loss is %v", done, row.Loss)
		}
		j.Result.FinalLoss = row.Loss
		last := done == numSteps
		if len(data.valid) > 0 && (last || (cfg.StepsPerEval > 0 && done%cfg.StepsPerEval == 0)) {
			ev, per, err := j.evaluate(ctx, eng, data, batch, seq)
			if err != nil {
				return fmt.Errorf("eval at step %d: %w", done, err)
			}
			row.EvalLoss, row.Eval = &ev, per
			j.Result.FinalEvalLoss = &ev
			j.logf("info", "step %d: eval loss %.4f", done, ev)
		}
		if err := mw.Write(row); err != nil {
			return err
		}
		msg := fmt.Sprintf("loss %.4f · lr %.3g · %s tok/s · MFU %.1f%%", row.Loss, lr, humanRate(tps), 100*mfu)
		j.Report.Progress(float64(done), float64(numSteps), "steps", msg)
		if done == start+1 || done%50 == 0 || last {
			j.logf("info", "step %d/%d: %s · grad norm %.3g", done, numSteps, msg, info.GradNorm)
		}
		ts.ElapsedSecs = elapsedBefore + time.Since(runStart).Seconds()
		permanent := last || (cfg.StepsPerCheckpoint > 0 && done%cfg.StepsPerCheckpoint == 0)
		mins := cfg.CheckpointMinutes
		if mins == 0 {
			mins = 10
		}
		temporary := !permanent && mins > 0 && time.Since(lastCkpt) >= time.Duration(mins*float64(time.Minute))
		if permanent || temporary {
			dir := filepath.Join(ckRoot, weights.StepName(done))
			st, err := eng.OptimizerState()
			if err != nil {
				return err
			}
			if adapter != nil {
				a, err := eng.Adapter()
				if err != nil {
					return err
				}
				a.Spec = adapter.Spec
				err = SaveAdapterCheckpoint(dir, done, a, st, ts, temporary, tok.dir)
				if err != nil {
					return err
				}
			} else {
				p, err := eng.Params()
				if err != nil {
					return err
				}
				if err := SaveCheckpoint(dir, done, p, st, ts, temporary, tok.dir); err != nil {
					return err
				}
			}
			if err := PruneTemporary(ckRoot, done); err != nil {
				j.logf("warn", "%v", err)
			}
			if err := j.publishCheckpoint(ctx, dir, done); err != nil {
				return err
			}
			lastCkpt = time.Now()
			j.logf("info", "checkpoint %s", j.where(dir))
		} else if j.remote() && time.Since(j.metricsPublished) >= metricsPublishEvery {
			if err := j.publishMetrics(ctx); err != nil {
				j.logf("warn", "publish metrics: %v", err)
			}
		}
		if last || (cfg.StepsPerHFExport > 0 && done%cfg.StepsPerHFExport == 0) {
			if err := j.export(ctx, eng, done, adapter, base, exportOpts, tok, data); err != nil {
				return err
			}
		}
		if j.afterStep != nil {
			if err := j.afterStep(done); err != nil {
				return err
			}
		}
	}
	// A run killed between its final checkpoint and its final export
	// resumes with nothing to train; the export must still exist.
	if start == numSteps {
		missing := false
		for _, sub := range j.exportDirs(adapter) {
			ok, err := j.exportExists(ctx, sub, numSteps)
			if err != nil {
				return err
			}
			missing = missing || !ok
		}
		if missing {
			if err := j.export(ctx, eng, numSteps, adapter, base, exportOpts, tok, data); err != nil {
				return err
			}
		}
	}
	if nSteps > 0 {
		j.Result.TokensPerSec = sumTPS / float64(nSteps)
		j.Result.MFU = sumMFU / float64(nSteps)
		j.logf("info", "trained steps %d..%d: %s tokens/s, MFU %.1f%% of %.1f GFLOP/s, final loss %.4f",
			start+1, numSteps, humanRate(j.Result.TokensPerSec), 100*j.Result.MFU, peak/1e9, j.Result.FinalLoss)
	}
	return nil
}

// evaluate returns the loss over every validation component (token
// weighted) and each component's own.
func (j *Job) evaluate(ctx context.Context, eng Engine, data *Data, batch *llama.Batch, seq *dataloader.Sequence) (float64, map[string]float64, error) {
	per := map[string]float64{}
	var all llama.LossResult
	micro := batch.B
	for _, s := range data.valid {
		n := s.packing.Len()
		if lim := j.Config.MaxEvalSequences; lim > 0 && n > lim {
			n = lim
		}
		var comp llama.LossResult
		for s0 := int64(0); s0 < n; s0 += int64(micro) {
			if err := ctx.Err(); err != nil {
				return 0, nil, err
			}
			for r := 0; r < micro; r++ {
				if s0+int64(r) < n {
					if err := fillRow(s, s0+int64(r), batch, r, seq); err != nil {
						return 0, nil, err
					}
					continue
				}
				// Pad a short last batch with empty rows, keeping its shape.
				off := r * batch.T
				for t := 0; t < batch.T; t++ {
					batch.Tokens[off+t], batch.Segments[off+t], batch.Positions[off+t], batch.LossMask[off+t] = 0, -1, 0, false
				}
			}
			r, err := eng.Eval(ctx, batch)
			if err != nil {
				return 0, nil, fmt.Errorf("validation component %s: %w", s.name, err)
			}
			comp = comp.Add(r)
		}
		per[s.name] = comp.Mean()
		all = all.Add(comp)
	}
	return all.Mean(), per, nil
}

// baseModel is the model a run starts from.
type baseModel struct {
	params *llama.Params
	// name is the model as configured, dir where it resolved ("" for
	// model_config), fingerprint weights.Fingerprint of dir.
	name, dir, fingerprint string
	// adapter is set when the configured model is a LoRA adapter's
	// directory (adapterDir): params are then its base's.
	adapter    *lora.Adapter
	adapterDir string
}

// startingPoint loads the model a run starts from: model_config's new
// model, or the configured model (model_name_or_path, else
// initialize_from_checkpoint_path), which may be a LoRA adapter's
// directory (one of this op's LoRA steps, or a PEFT adapter made
// elsewhere): then its base and the adapter, unmerged.
func (j *Job) startingPoint(ctx context.Context) (*baseModel, error) {
	cfg := j.Config
	if hasModelConfig(cfg.ModelConfig) {
		if cfg.Lora != nil {
			return nil, fmt.Errorf("lora trains an adapter over a pretrained model; model_config trains a new model from scratch")
		}
		mc, err := weights.ParseModelConfig(cfg.ModelConfig)
		if err != nil {
			return nil, err
		}
		j.logf("info", "initialising a %d-parameter model from model_config with seed %d", mc.NumParams(), cfg.Seed)
		p, err := weights.Init(mc, uint64(cfg.Seed))
		return &baseModel{params: p}, err
	}
	name := ""
	if cfg.ModelNameOrPath != nil && *cfg.ModelNameOrPath != "" {
		name = *cfg.ModelNameOrPath
	} else {
		name = *cfg.InitializeFromCheckpointPath
	}
	logf := func(f string, a ...any) { j.logf("info", f, a...) }
	dir, err := weights.Resolve(ctx, name, logf)
	if err != nil {
		return nil, err
	}
	if cfg.Lora != nil && !weights.IsHubID(name) {
		// Continuing a LoRA run's adapter, even where it also exported
		// the merged model.
		if p, err := sdk.LocalPath(name); err == nil {
			if ad, ok := weights.FindAdapterDir(p); ok {
				dir = ad
			}
		}
	}
	b := &baseModel{name: name, dir: dir}
	var info weights.Info
	if lora.IsAdapterDir(dir) && !fileExists(filepath.Join(dir, weights.ConfigName)) {
		b.params, b.adapter, info, err = weights.LoadAdapter(ctx, dir, logf)
		if err != nil {
			return nil, err
		}
		b.adapterDir, b.name, b.dir = dir, info.BaseName, info.Base
		j.logf("info", "%s is a LoRA adapter (r %d over %d projections) of %s", dir, b.adapter.Spec.R, len(b.adapter.Modules), b.dir)
	} else if b.params, info, err = weights.LoadDir(dir); err != nil {
		return nil, err
	}
	dts := []string{}
	for d, n := range info.DTypes {
		dts = append(dts, fmt.Sprintf("%d %s", n, d))
	}
	sort.Strings(dts)
	j.logf("info", "loaded %s from %s (%s tensors)", b.name, b.dir, strings.Join(dts, ", "))
	if cfg.Lora != nil {
		if b.fingerprint, err = weights.Fingerprint(b.dir); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// sameAs refuses to resume a LoRA run over another base than it started
// with (recorded in the checkpoint's trainer state).
func (b *baseModel) sameAs(rec *BaseModel, ckDir string) error {
	if rec == nil || rec.Fingerprint == "" {
		return nil // written by another driver: nothing to compare
	}
	if rec.Fingerprint != b.fingerprint {
		return fmt.Errorf("checkpoint %s trained a LoRA adapter over %s (fingerprint %.12s), but the base model %s (%s) is now another (fingerprint %.12s): refusing to resume over a changed base", ckDir, rec.Name, rec.Fingerprint, b.name, b.dir, b.fingerprint)
	}
	return nil
}

// loraAdapter is the adapter a LoRA run trains: the checkpoint's when
// resuming, else the starting model's when it is an adapter (continuing
// it), else a fresh one (PEFT's initialisation, seeded by the run's seed).
// Its Spec is the run's lora config resolved against the model, naming
// the base.
func (j *Job) loraAdapter(b *baseModel, ck *Checkpoint) (*lora.Adapter, error) {
	spec, err := j.Config.Lora.Spec()
	if err != nil {
		return nil, fmt.Errorf("lora: %w", err)
	}
	if spec, err = spec.Resolved(b.params.Config); err != nil {
		return nil, err
	}
	spec.BaseModel, spec.Revision, _ = weights.BaseRef(b.name, b.dir, j.Out)
	fresh, err := lora.New(spec, b.params.Config)
	if err != nil {
		return nil, err
	}
	var from *lora.Adapter
	var what string
	switch {
	case ck != nil:
		if from, err = ck.Adapter(b.params.Config); err != nil {
			return nil, err
		}
		what = "checkpoint " + ck.Dir
	case b.adapter != nil:
		from, what = b.adapter, "the adapter "+b.adapterDir
	default:
		if err := fresh.Init(b.params, uint64(j.Config.Seed)); err != nil {
			return nil, err
		}
		return fresh, nil
	}
	if err := fresh.SameLayout(from); err != nil {
		return nil, fmt.Errorf("%s is not laid out as this run's lora config asks (r %d, target_modules %s, modules_to_save %v, bias %s): %v", what, spec.R, targetList(spec), spec.ModulesToSave, spec.Bias, err)
	}
	if from.Scale() != fresh.Scale() {
		return nil, fmt.Errorf("%s was trained with scale %g (lora_alpha %g, r %d, use_rslora %v); this run's lora config gives %g", what, from.Scale(), from.Spec.Alpha, from.Spec.R, from.Spec.UseRSLoRA, fresh.Scale())
	}
	copy(fresh.Flat(), from.Flat())
	return fresh, nil
}

func targetList(s lora.Spec) string {
	if s.Targets.Pattern != "" {
		return s.Targets.Pattern
	}
	return strings.Join(s.Targets.Names, ", ")
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// exportDirs are the directories a step's exports go to.
func (j *Job) exportDirs(adapter *lora.Adapter) []string {
	switch {
	case adapter == nil:
		return []string{"hf"}
	case j.Config.Lora.MergeLora:
		return []string{"adapter", "hf"}
	}
	return []string{"adapter"}
}

// export writes step's exports: hf/step-N (the model; with LoRA only when
// merge_lora asks, the adapter merged) and, with LoRA, adapter/step-N (the
// adapter in PEFT's layout).
func (j *Job) export(ctx context.Context, eng Engine, step int64, adapter *lora.Adapter, b *baseModel, o weights.ExportOptions, tok *tokFiles, data *Data) error {
	if adapter != nil {
		dir := filepath.Join(j.Out, "adapter", weights.StepName(step))
		a, err := eng.Adapter()
		if err != nil {
			return err
		}
		a.Spec = adapter.Spec
		_, _, rel := weights.BaseRef(b.name, b.dir, dir)
		o.Extra = map[string][]byte{weights.MarinInfoName: tok.marinInfo(data, step, rel)}
		if err := weights.ExportAdapter(dir, a, o); err != nil {
			return err
		}
		if err := j.publishExport(ctx, dir); err != nil {
			return err
		}
		j.logf("info", "exported %s", j.where(dir))
		if !j.Config.Lora.MergeLora {
			return nil
		}
	}
	dir := filepath.Join(j.Out, "hf", weights.StepName(step))
	o.Extra = map[string][]byte{weights.MarinInfoName: tok.marinInfo(data, step, "")}
	p, err := eng.Params()
	if err != nil {
		return err
	}
	if err := weights.ExportHF(dir, p, o); err != nil {
		return err
	}
	if err := j.publishExport(ctx, dir); err != nil {
		return err
	}
	j.logf("info", "exported %s", j.where(dir))
	return nil
}

// microBatch picks the largest divisor of train_batch_size whose
// activations fit the budget.
func (j *Job) microBatch(c llama.Config) int {
	cfg := j.Config
	if cfg.MicroBatchSize > 0 {
		return cfg.MicroBatchSize
	}
	if limit, err := ParseBytes(cfg.Resources.DeviceMemory); err == nil && cfg.Resources.DeviceMemory != "" {
		prof := Profile{Precision: PrecisionF32, Devices: 1}
		if j.Profile != nil {
			prof = *j.Profile
		}
		if m, _, err := microBatchFor(cfg, requestFor(cfg, c, prof, nil), limit); err == nil && m > 0 {
			return m
		}
	}
	c = c.Normalized()
	d, f := int64(c.HiddenSize), int64(c.IntermediateSize)
	q, kv := int64(c.NumAttentionHeads*c.HeadDim), int64(c.NumKeyValueHeads*c.HeadDim)
	perLayer := 4 * (2*d + 2*q + 2*kv + 2*f + int64(c.NumAttentionHeads))
	shared := 4 * (7*d + f + 2*q + 2*kv)
	perSeq := int64(cfg.MaxSeqLen) * (int64(c.NumHiddenLayers)*perLayer + shared)
	budget := j.ActivationBytes
	if budget <= 0 {
		budget = min(memTotal()/4, 8<<30)
	}
	best := 1
	for m := 1; m <= cfg.TrainBatchSize; m++ {
		if cfg.TrainBatchSize%m == 0 && int64(m)*perSeq <= budget {
			best = m
		}
	}
	return best
}

func memTotal() int64 {
	raw, err := os.ReadFile("/proc/meminfo")
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(raw))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "MemTotal:" {
				if kb, err := strconv.ParseInt(f[1], 10, 64); err == nil {
					return kb << 10
				}
			}
		}
	}
	return 8 << 30
}

func humanRate(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// tokFiles is the tokenizer the caches were made with, found on disk so
// exports and checkpoints can carry it.
type tokFiles struct {
	dir   string // "" when not found
	vocab *chat.Vocab
	sha   string
}

// tokenizerFiles finds the tokenizer: the config's tokenizer, else the
// file the tokenize step read (recorded in the cache manifest). Its
// tokenizer.json must be the one the caches were made with.
func (j *Job) tokenizerFiles(ctx context.Context, data *Data) (*tokFiles, error) {
	var cands []string
	if t := j.Config.Tokenizer; t != nil && *t != "" {
		cands = append(cands, *t)
	}
	if data.Tokenizer.File != "" {
		cands = append(cands, data.Tokenizer.File)
	}
	if data.Tokenizer.Name != "" {
		cands = append(cands, data.Tokenizer.Name)
	}
	var tried []string
	for _, name := range cands {
		dir, err := weights.ResolveTokenizer(ctx, name, func(f string, a ...any) { j.logf("info", f, a...) })
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		raw, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
		if err != nil {
			tried = append(tried, err.Error())
			continue
		}
		sum := sha256.Sum256(raw)
		sha := hex.EncodeToString(sum[:])
		if data.Tokenizer.SHA256 != "" && sha != data.Tokenizer.SHA256 {
			return nil, fmt.Errorf("tokenizer %s (sha256 %.12s) is not the one the training data was tokenized with (%s, sha256 %.12s)", name, sha, data.Tokenizer.Name, data.Tokenizer.SHA256)
		}
		tk, err := tokenizer.FromBytes(raw)
		if err != nil {
			return nil, fmt.Errorf("tokenizer %s: %w", name, err)
		}
		cfgJSON, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("tokenizer %s: %w", name, err)
		}
		v, err := chat.NewVocab(tk, raw, cfgJSON)
		if err != nil {
			return nil, fmt.Errorf("tokenizer %s: %w", name, err)
		}
		return &tokFiles{dir: dir, vocab: v, sha: sha}, nil
	}
	j.logf("warn", "the tokenizer files were not found (%s); checkpoints and exports will not carry them", strings.Join(tried, "; "))
	return &tokFiles{}, nil
}

// exportOptions fills bos/eos ids: the tokenizer's, plus the chat
// format's end of turn so generation stops at the end of a turn.
func (t *tokFiles) exportOptions(data *Data) weights.ExportOptions {
	o := weights.ExportOptions{TokenizerDir: t.dir}
	if t.vocab == nil {
		return o
	}
	if t.vocab.BOS != "" {
		if id, ok := t.vocab.Tok.TokenToID(t.vocab.BOS); ok {
			b := int(id)
			o.BOSTokenID = &b
		}
	}
	seen := map[int]bool{}
	add := func(id uint32) {
		if !seen[int(id)] {
			seen[int(id)] = true
			o.EOSTokenIDs = append(o.EOSTokenIDs, int(id))
		}
	}
	if t.vocab.EOS != "" {
		if id, ok := t.vocab.Tok.TokenToID(t.vocab.EOS); ok {
			add(id)
		}
	}
	if len(data.Format) > 0 {
		if fo, err := chat.ParseOptions(data.Format); err == nil && fo.Name != chat.NamePlugin {
			if p, err := chat.NewPrompter(fo, t.vocab); err == nil {
				for _, id := range p.Stop() {
					add(id)
				}
			}
		}
	}
	return o
}

// marinInfo is marin.json of an export; baseRel is an adapter's base
// relative to it.
func (t *tokFiles) marinInfo(data *Data, step int64, baseRel string) []byte {
	raw, _ := json.MarshalIndent(weights.MarinInfo{ChatFormat: data.Format, Step: step, TokenizerSHA256: data.Tokenizer.SHA256, BaseModel: baseRel}, "", "  ")
	return raw
}
