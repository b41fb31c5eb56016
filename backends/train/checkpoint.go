package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/model/safetensors"
	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/plugins/storage"
)

// File names inside a checkpoint directory (the layout is in doc.go).
const (
	ConfigFile    = "config.json"
	OptimizerFile = "optimizer.bin"
	MetadataFile  = "metadata.json"
)

// TrainerState is the "extra" object of a checkpoint's metadata.json: what
// the train op needs besides weights and optimizer state to continue
// exactly where it stopped.
type TrainerState struct {
	// NextSequence is the data loader's position: the global index of the
	// next training sequence in the mixture's stream.
	NextSequence int64 `json:"next_sequence"`
	Seed         int64 `json:"seed"`
	// MicroBatchSize is the number of sequences per forward/backward pass;
	// a resumed run keeps it so gradients are summed in the same order.
	MicroBatchSize int   `json:"micro_batch_size"`
	NumTrainSteps  int64 `json:"num_train_steps"`
	// TokensSeen counts every position of every training sequence;
	// TrainedTokens only the loss targets.
	TokensSeen    int64   `json:"tokens_seen"`
	TrainedTokens int64   `json:"trained_tokens"`
	ElapsedSecs   float64 `json:"elapsed_seconds"`
	Backend       string  `json:"backend"` // "cpu"
	// LoRABase is the frozen model a LoRA run's adapter applies to (nil
	// when every parameter is trained).
	LoRABase *BaseModel `json:"lora_base,omitempty"`
}

// BaseModel identifies the base model of a LoRA run.
type BaseModel struct {
	// Name is the model as configured (a hub id, a path or a step output).
	Name string `json:"name"`
	// Fingerprint is weights.Fingerprint of the model directory: a resumed
	// run refuses a base that has changed.
	Fingerprint string `json:"fingerprint"`
}

// CheckpointMeta is metadata.json as the train op writes it: the fields
// of backends/checkpoint's Metadata (step, extra) plus Marin's timestamp
// and is_temporary and the files with their sizes and sha256.
type CheckpointMeta struct {
	Step        int64         `json:"step"`
	Extra       *TrainerState `json:"extra"`
	Timestamp   string        `json:"timestamp"` // RFC 3339, UTC
	IsTemporary bool          `json:"is_temporary"`
	Files       []FileSum     `json:"files,omitempty"`
}

// FileSum is one file of a checkpoint with its size and sha256.
type FileSum struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// Checkpoint is a loaded checkpoint.
type Checkpoint struct {
	Dir  string
	Meta CheckpointMeta
	// Params are the weights of a full fine-tuning checkpoint; nil for a
	// LoRA run's (IsAdapter), whose adapter Adapter reads.
	Params    *llama.Params
	IsAdapter bool
	Optimizer *optim.State // nil when the checkpoint has none (before any update)
}

// Adapter reads a LoRA checkpoint's adapter for its base model's config
// (nil for a full fine-tuning checkpoint).
func (c *Checkpoint) Adapter(base llama.Config) (*lora.Adapter, error) {
	if !c.IsAdapter {
		return nil, nil
	}
	a, err := lora.Read(c.Dir, base)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w: %w", c.Dir, err, ErrCorrupt)
	}
	return a, nil
}

// Trainer is Meta.Extra, or a zero state when the checkpoint has none
// (one written by another driver).
func (c *Checkpoint) Trainer() TrainerState {
	if c.Meta.Extra == nil {
		return TrainerState{}
	}
	return *c.Meta.Extra
}

// SaveCheckpoint writes a checkpoint of params, the optimizer state and
// the trainer state into dir (…/checkpoints/step-N) atomically, in
// backends/checkpoint's layout plus the tokenizer files (copied from
// tokenizerDir when not empty) and file checksums in metadata.json, which
// is written last.
func SaveCheckpoint(dir string, step int64, params *llama.Params, opt *optim.State, ts TrainerState, temporary bool, tokenizerDir string) error {
	return saveCheckpoint(dir, step, func(tmp string) error {
		return weights.WriteModelFiles(tmp, params, weights.ExportOptions{})
	}, opt, ts, temporary, tokenizerDir)
}

// SaveAdapterCheckpoint writes a LoRA run's checkpoint into dir as
// SaveCheckpoint does, with the adapter in PEFT's layout (float32
// adapter_model.safetensors and adapter_config.json) in place of the
// model's weights, which stay where ts.LoRABase says.
func SaveAdapterCheckpoint(dir string, step int64, a *lora.Adapter, opt *optim.State, ts TrainerState, temporary bool, tokenizerDir string) error {
	return saveCheckpoint(dir, step, func(tmp string) error {
		return lora.WriteFiles(tmp, a, safetensors.F32)
	}, opt, ts, temporary, tokenizerDir)
}

func saveCheckpoint(dir string, step int64, writeWeights func(tmp string) error, opt *optim.State, ts TrainerState, temporary bool, tokenizerDir string) error {
	return weights.WriteDirAtomic(dir, func(tmp string) error {
		if err := writeWeights(tmp); err != nil {
			return fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		if opt != nil {
			err := storage.WriteAtomicFunc(context.Background(), filepath.Join(tmp, OptimizerFile), func(w io.Writer) error {
				_, err := opt.WriteTo(w)
				return err
			})
			if err != nil {
				return fmt.Errorf("checkpoint %s: %w", dir, err)
			}
		}
		if err := weights.CopyTokenizerFiles(tokenizerDir, tmp); err != nil {
			return fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		meta := CheckpointMeta{Step: step, Extra: &ts, Timestamp: time.Now().UTC().Format(time.RFC3339), IsTemporary: temporary}
		sums, err := sumFiles(tmp)
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", dir, err)
		}
		meta.Files = sums
		raw, _ := json.MarshalIndent(meta, "", "  ")
		return storage.WriteAtomic(context.Background(), filepath.Join(tmp, MetadataFile), append(raw, '\n'))
	})
}

func sumFiles(dir string) ([]FileSum, error) {
	var out []FileSum
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == MetadataFile {
			return nil
		}
		n, sum, err := storage.HashFile(p)
		if err != nil {
			return err
		}
		out = append(out, FileSum{Path: filepath.ToSlash(rel), Bytes: n, SHA256: sum})
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, err
}

// ErrIncomplete is matched by the error for a step directory without its
// commit marker (metadata.json).
var ErrIncomplete = errors.New("checkpoint is incomplete (no metadata.json)")

// ErrCorrupt is matched by the error for a committed checkpoint whose files
// are damaged.
var ErrCorrupt = errors.New("checkpoint is corrupt")

// ReadCheckpointMeta reads dir/metadata.json without checking the files.
func ReadCheckpointMeta(dir string) (CheckpointMeta, error) {
	var m CheckpointMeta
	raw, err := os.ReadFile(filepath.Join(dir, MetadataFile))
	if errors.Is(err, os.ErrNotExist) {
		return m, fmt.Errorf("checkpoint %s: %w", dir, ErrIncomplete)
	}
	if err != nil {
		return m, fmt.Errorf("checkpoint %s: %w", dir, err)
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("checkpoint %s: %s: %v: %w", dir, MetadataFile, err, ErrCorrupt)
	}
	if n, ok := weights.ParseStepName(filepath.Base(dir)); ok && n != m.Step {
		return m, fmt.Errorf("checkpoint %s: %s says step %d: %w", dir, MetadataFile, m.Step, ErrCorrupt)
	}
	return m, nil
}

// VerifyCheckpoint checks every file metadata.json lists against its size
// and sha256. A checkpoint written by a driver that records no files
// passes; its safetensors and optimizer files are still checked
// structurally (and by the optimizer state's CRC) when loaded.
func VerifyCheckpoint(dir string) (CheckpointMeta, error) {
	m, err := ReadCheckpointMeta(dir)
	if err != nil {
		return m, err
	}
	for _, f := range m.Files {
		rel := filepath.FromSlash(f.Path)
		if !filepath.IsLocal(rel) {
			return m, fmt.Errorf("checkpoint %s: file %q is outside the checkpoint: %w", dir, f.Path, ErrCorrupt)
		}
		p := filepath.Join(dir, rel)
		fi, err := os.Stat(p)
		if err != nil {
			return m, fmt.Errorf("checkpoint %s: %s: %v: %w", dir, f.Path, err, ErrCorrupt)
		}
		if fi.Size() != f.Bytes {
			return m, fmt.Errorf("checkpoint %s: %s is %d bytes, metadata.json says %d (truncated?): %w", dir, f.Path, fi.Size(), f.Bytes, ErrCorrupt)
		}
		_, sum, err := storage.HashFile(p)
		if err != nil {
			return m, fmt.Errorf("checkpoint %s: %s: %w", dir, f.Path, err)
		}
		if sum != f.SHA256 {
			return m, fmt.Errorf("checkpoint %s: %s has sha256 %.16s…, metadata.json says %.16s…: %w", dir, f.Path, sum, f.SHA256, ErrCorrupt)
		}
	}
	return m, nil
}

// LoadCheckpoint verifies and reads the checkpoint in dir.
func LoadCheckpoint(dir string) (*Checkpoint, error) {
	meta, err := VerifyCheckpoint(dir)
	if err != nil {
		return nil, err
	}
	c := &Checkpoint{Dir: dir, Meta: meta, IsAdapter: lora.IsAdapterDir(dir)}
	if c.IsAdapter {
		// The adapter is read against its base model (Adapter); its
		// configuration is checked now.
		if _, err := lora.ReadConfig(dir); err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w: %w", dir, err, ErrCorrupt)
		}
	} else if c.Params, _, err = weights.LoadDir(dir); err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w: %w", dir, err, ErrCorrupt)
	}
	f, err := os.Open(filepath.Join(dir, OptimizerFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		if meta.Step != 0 {
			return nil, fmt.Errorf("checkpoint %s: step %d but no %s: %w", dir, meta.Step, OptimizerFile, ErrCorrupt)
		}
	case err != nil:
		return nil, fmt.Errorf("checkpoint %s: %w", dir, err)
	default:
		st, err := optim.ReadState(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("checkpoint %s: %w: %w", dir, err, ErrCorrupt)
		}
		if st.Step != meta.Step {
			return nil, fmt.Errorf("checkpoint %s: the optimizer state has %d updates, metadata.json says step %d: %w", dir, st.Step, meta.Step, ErrCorrupt)
		}
		c.Optimizer = st
	}
	return c, nil
}

// CheckpointEntry is one step-N directory under a checkpoints root.
type CheckpointEntry struct {
	Step     int64
	Dir      string
	Complete bool // has metadata.json
	Meta     CheckpointMeta
}

// ListCheckpoints returns the step-N directories under root
// (…/checkpoints), oldest first.
func ListCheckpoints(root string) ([]CheckpointEntry, error) {
	steps, err := weights.StepDirs(root)
	if err != nil {
		return nil, err
	}
	out := make([]CheckpointEntry, 0, len(steps))
	for _, s := range steps {
		e := CheckpointEntry{Step: s.Step, Dir: s.Dir}
		if _, err := os.Stat(filepath.Join(s.Dir, MetadataFile)); err == nil {
			e.Complete = true
			e.Meta, _ = ReadCheckpointMeta(s.Dir)
		}
		out = append(out, e)
	}
	return out, nil
}

// LatestCheckpoint loads the newest complete checkpoint under root, or
// returns nil when there is none. Incomplete step directories are skipped
// (and reported to skipped). A corrupt newest checkpoint is an error, not a
// silent fall-back to an older one: the error says which older checkpoint
// deleting it would resume from.
func LatestCheckpoint(root string, skipped func(dir string)) (*Checkpoint, error) {
	entries, err := ListCheckpoints(root)
	if err != nil {
		return nil, err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		e := entries[i]
		if !e.Complete {
			if skipped != nil {
				skipped(e.Dir)
			}
			continue
		}
		c, err := LoadCheckpoint(e.Dir)
		if err == nil {
			return c, nil
		}
		older := "no older complete checkpoint exists, so deleting it restarts training from the beginning"
		for j := i - 1; j >= 0; j-- {
			if entries[j].Complete {
				older = "deleting it resumes from " + entries[j].Dir
				break
			}
		}
		return nil, fmt.Errorf("refusing to resume: %w (%s)", err, older)
	}
	return nil, nil
}

// PruneTemporary removes temporary checkpoints older than step keep, and
// incomplete step directories (crashed writers) older than keep.
func PruneTemporary(root string, keep int64) error {
	entries, err := ListCheckpoints(root)
	if err != nil {
		return err
	}
	var errs []string
	for _, e := range entries {
		if e.Step < keep && (!e.Complete || e.Meta.IsTemporary) {
			if err := os.RemoveAll(e.Dir); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("prune checkpoints under %s: %s", root, strings.Join(errs, "; "))
	}
	return nil
}
