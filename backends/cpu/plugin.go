package cpu

import (
	"encoding/json"

	"github.com/marin-go/marin/backends/cpu/evaluate"
	"github.com/marin-go/marin/backends/cpu/kernels"
	"github.com/marin-go/marin/backends/eval"
	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/tokens/tokenize"
	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/plugins/sdk"
)

// Name is the plugin's name.
const Name = "cpu"

// Version is the plugin's version; it is recorded in .executor_info.
const Version = "0.1.0"

// Engine is the CPU engine as the train op sees it: it runs on the host's
// cores ("auto" and "cpu" are the same device here); resources.threads
// bounds the threads its kernels use.
var Engine = train.EngineSpec{
	Name:    Name,
	Devices: []string{"auto", "cpu"},
	New: func(cfg *train.Config) (train.EngineFactory, error) {
		if cfg.Resources.Threads > 0 {
			kernels.SetThreads(cfg.Resources.Threads)
		}
		return NewEngine, nil
	},
}

// EvalEngine is the CPU engine for eval/harness: the backends/eval engine
// over this engine's decoder.
var EvalEngine = eval.DecoderEngine(func(json.RawMessage) (sample.DecoderFactory, error) { return NewDecoder, nil })

// Plugin describes the cpu backend plugin and its ops: tokenize, train
// (behind default_sft) on this engine, eval/exact_match and eval/harness
// (behind evaluate and default_sft_eval).
func Plugin() *sdk.Plugin {
	return &sdk.Plugin{
		Name: Name, Kind: sdk.KindBackend, Version: Version,
		Ops: map[string]sdk.Op{
			tokenize.OpName:       tokenize.Op(),
			train.OpName:          train.Op(Engine),
			evaluate.ExactMatchOp: evaluate.Op(),
			eval.OpName:           eval.Op(Name, EvalEngine),
		},
	}
}
