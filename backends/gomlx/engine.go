package gomlx

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/gomlx/go-xla/pkg/pjrt"
	gobackends "github.com/gomlx/gomlx/backends"
	_ "github.com/gomlx/gomlx/backends/simplego" // the pure-Go engine, registered as "go"
	"github.com/gomlx/gomlx/backends/xla"

	"github.com/marin-go/marin/backends/train"
)

// Engine names accepted in Options.Engine.
const (
	EngineGo  = "go"  // GoMLX's pure-Go engine: hermetic, used on CPU
	EngineXLA = "xla" // XLA through a PJRT plugin file named by the configuration
)

// PJRTPluginEnv names the environment variable that may give the absolute
// path of a PJRT plugin when the configuration names none.
const PJRTPluginEnv = "MARIN_PJRT_PLUGIN"

// goEngineConfig is the pure-Go engine's configuration. Its default
// (ops executed in parallel when idle) deadlocked on the first training
// step on a 2-core machine with v0.26.0; executing ops sequentially (each op
// still uses the worker pool inside) does not.
const goEngineConfig = "go:ops_sequential"

// Options choose where a model runs.
type Options struct {
	// Engine is EngineGo (default) or EngineXLA.
	Engine string
	// PJRTPlugin is the absolute path of the PJRT plugin (.so) for EngineXLA;
	// empty means $MARIN_PJRT_PLUGIN. Nothing is ever downloaded.
	PJRTPlugin string
	// Precision is the precision policy (train.Precision: the dtypes of
	// weights, compute and AdamW's moments; bf16 weights get Kahan-
	// compensated updates). Zero means the engine's default: float32 on
	// EngineGo, "mixed" (float32 weights and moments, bf16 compute) on
	// EngineXLA, unless BF16 says otherwise.
	Precision train.Precision
	// BF16, when Precision is zero, chooses between "mixed" (true) and
	// float32 (false). Default: on for EngineXLA, off for EngineGo (the
	// pure-Go engine only emulates bf16, so it is slower there, not faster).
	BF16 *bool
	// Checkpointing recomputes each decoder layer's activations in the
	// backward pass instead of keeping them (nil: on for EngineXLA, off for
	// EngineGo).
	Checkpointing *bool
	// Devices is how many of the engine's devices to train on
	// (resources.num_devices); 0 means all of them. Over several devices
	// the weights and optimizer state are sharded (FSDP) and the batch is
	// split, with GoMLX's AutoSharding on XLA.
	Devices int
}

// policy is the precision policy o resolves to.
func (o Options) policy() train.Precision {
	if o.Precision != (train.Precision{}) {
		return o.Precision
	}
	bf := o.Engine == EngineXLA
	if o.BF16 != nil {
		bf = *o.BF16
	}
	if bf {
		return train.PrecisionMixed
	}
	return train.PrecisionF32
}

func (o Options) bf16() bool { return o.policy().Compute == train.BF16 }

// checkpointing says whether o recomputes activations.
func (o Options) checkpointing() bool {
	if o.Checkpointing != nil {
		return *o.Checkpointing
	}
	return o.Engine == EngineXLA
}

// backendConfig returns the GOMLX_BACKEND-style configuration for o.
func (o Options) backendConfig() (string, error) {
	switch o.Engine {
	case "", EngineGo:
		return goEngineConfig, nil
	case EngineXLA:
		p := o.PJRTPlugin
		if p == "" {
			p = os.Getenv(PJRTPluginEnv)
		}
		if p == "" {
			return "", fmt.Errorf("gomlx on xla needs a PJRT plugin: set resources.pjrt_plugin or $%s to the absolute path of a PJRT plugin .so (for CUDA, the one inside JAX's jax-cuda13-pjrt wheel); nothing is downloaded", PJRTPluginEnv)
		}
		if !filepath.IsAbs(p) {
			return "", fmt.Errorf("gomlx: PJRT plugin path %q is not absolute", p)
		}
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("gomlx: PJRT plugin: %w", err)
		}
		if strings.Contains(p, ",") {
			return "", fmt.Errorf("gomlx: PJRT plugin path %q contains a comma", p)
		}
		return "xla:" + p, nil
	}
	return "", fmt.Errorf("gomlx: unknown engine %q (want %q or %q)", o.Engine, EngineGo, EngineXLA)
}

var (
	enginesMu sync.Mutex
	engines   = map[string]gobackends.Backend{}
)

// engine returns the GoMLX backend for o, one per configuration per
// process (a PJRT client is expensive and the pure-Go engine owns a pool).
func engine(o Options) (gobackends.Backend, error) {
	cfg, err := o.backendConfig()
	if err != nil {
		return nil, err
	}
	enginesMu.Lock()
	defer enginesMu.Unlock()
	if b, ok := engines[cfg]; ok {
		return b, nil
	}
	hermeticEnv(strings.HasPrefix(cfg, "xla:"))
	var b gobackends.Backend
	err = try(func() error {
		var err error
		if p, ok := strings.CutPrefix(cfg, "xla:"); ok && noPreallocation() {
			b, err = xla.NewWithOptions(p, pjrt.NamedValuesMap{"preallocate": false})
			return err
		}
		b, err = gobackends.NewWithConfig(cfg)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("gomlx: start engine %q: %w", cfg, err)
	}
	engines[cfg] = b
	return b, nil
}

// PreallocateEnv, set to false, keeps XLA from reserving most of the
// accelerator's memory when it starts (its default), so that what the
// device reports in use is what training holds: gpucheck.sh measures peak
// memory that way.
const PreallocateEnv = "MARIN_XLA_PREALLOCATE"

func noPreallocation() bool {
	v := strings.ToLower(os.Getenv(PreallocateEnv))
	return v == "false" || v == "0" || v == "no"
}

// hermeticEnv stops GoMLX from downloading anything and, for CUDA PJRT
// plugins, from using a CUDA data dir that go-xla v0.1.4 may set to a path
// of its author's machine.
func hermeticEnv(accelerator bool) {
	os.Setenv("GOMLX_NO_AUTO_INSTALL", "1")
	xla.EnableAutoInstall(false)
	if accelerator {
		if os.Getenv("GOPJRT_CUDA_CHECKS") == "" {
			os.Setenv("GOPJRT_CUDA_CHECKS", "0")
		}
		flags := os.Getenv("XLA_FLAGS")
		if !strings.Contains(flags, "--xla_gpu_cuda_data_dir") {
			if dir := cudaDataDir(); dir != "" {
				os.Setenv("XLA_FLAGS", strings.TrimSpace(flags+" --xla_gpu_cuda_data_dir="+dir))
			}
		}
	}
}

// cudaDataDir finds a CUDA installation for XLA's ptxas/libdevice lookup:
// $CUDA_HOME, $CUDA_PATH or /usr/local/cuda, whichever exists.
func cudaDataDir() string {
	for _, d := range []string{os.Getenv("CUDA_HOME"), os.Getenv("CUDA_PATH"), "/usr/local/cuda"} {
		if d == "" {
			continue
		}
		if _, err := os.Stat(d); err == nil {
			return d
		}
	}
	return ""
}

// try runs fn, turning a GoMLX panic into an error so panics never leave
// this package.
func try(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			if e, ok := r.(error); ok {
				err = fmt.Errorf("gomlx: %w", e)
			} else {
				err = fmt.Errorf("gomlx: %v", r)
			}
			if os.Getenv("MARIN_GOMLX_TRACE") != "" {
				err = fmt.Errorf("%w\n%s", err, debug.Stack())
			}
		}
	}()
	return fn()
}

var errClosed = errors.New("gomlx: model is closed")
