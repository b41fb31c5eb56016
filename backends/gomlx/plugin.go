package gomlx

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/marin-go/marin/backends/eval"
	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/plugins/schema"
	"github.com/marin-go/marin/plugins/sdk"
	"github.com/marin-go/marin/plugins/storage"
)

// PluginName is the built-in plugin's name (`marin plugin serve gomlx`).
const PluginName = "gomlx"

// PluginVersion is recorded in .executor_info.
const PluginVersion = "0.1.0"

// generateRows is how many prompts gomlx/generate decodes at once.
const generateRows = 8

// Op names. They are backend-qualified so that the cpu plugin's ops and
// these can be served side by side; the host picks one from the step's
// resources.backend (see the package doc).
const (
	OpGenerate = "gomlx/generate"
)

// Plugin returns the built-in gomlx backend plugin.
func Plugin() *sdk.Plugin {
	return &sdk.Plugin{
		Name: PluginName, Kind: sdk.KindBackend, Version: PluginVersion,
		Ops: map[string]sdk.Op{
			OpTrain: train.Op(Engine),
			OpGenerate: {
				Description: "sample continuations from an HF model directory or checkpoint on GoMLX (XLA on accelerators)",
				Schema:      schema.MustFromStruct(generateConfig{}),
				Run:         runGenerate,
			},
			PluginName + "/" + eval.OpName: eval.Op(PluginName, EvalEngine),
		},
	}
}

// EvalEngine is this engine for eval/harness: the backends/eval engine
// over its decoder, on the engine the step's resources choose.
var EvalEngine = eval.DecoderEngine(func(raw json.RawMessage) (sample.DecoderFactory, error) {
	var r Resources
	if len(raw) > 0 && string(raw) != "null" {
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, fmt.Errorf("gomlx: resources: %w", err)
		}
	}
	opts, err := r.Options()
	if err != nil {
		return nil, err
	}
	return DecoderFactory(opts), nil
})

// Resources is the part of a step's ResourceConfig the backend reads.
type Resources struct {
	Backend    string `json:"backend"`
	Device     string `json:"device"`      // cpu, cuda or tpu
	PJRTPlugin string `json:"pjrt_plugin"` // absolute path of the PJRT plugin for cuda/tpu
	NumDevices int    `json:"num_devices"` // devices to train on, data-parallel; 0: all
}

// Options turns resources into engine options: the pure-Go engine on cpu,
// XLA through the named PJRT plugin (or $MARIN_PJRT_PLUGIN) on cuda and tpu.
func (r Resources) Options() (Options, error) {
	if r.Backend != "" && r.Backend != PluginName {
		return Options{}, &sdk.Diagnostic{Summary: fmt.Sprintf("resources.backend is %q, but this is the gomlx backend", r.Backend), Attribute: "resources.backend"}
	}
	switch r.Device {
	case "auto":
		if r.PJRTPlugin != "" || os.Getenv(PJRTPluginEnv) != "" {
			return Options{Engine: EngineXLA, PJRTPlugin: r.PJRTPlugin, Devices: r.NumDevices}, nil
		}
		return Options{Engine: EngineGo, Devices: r.NumDevices}, nil
	case "", "cpu":
		if r.PJRTPlugin != "" {
			// An explicit plugin on cpu means XLA's CPU plugin.
			return Options{Engine: EngineXLA, PJRTPlugin: r.PJRTPlugin, Devices: r.NumDevices}, nil
		}
		return Options{Engine: EngineGo, Devices: r.NumDevices}, nil
	case "cuda", "tpu":
		return Options{Engine: EngineXLA, PJRTPlugin: r.PJRTPlugin, Devices: r.NumDevices}, nil
	}
	return Options{}, &sdk.Diagnostic{Summary: fmt.Sprintf("resources.device %q: want auto, cpu, cuda or tpu", r.Device), Attribute: "resources.device"}
}

type generateConfig struct {
	Model        string    `json:"model"`     // HF directory or checkpoint directory (path or file:// URL)
	Tokenizer    string    `json:"tokenizer"` // tokenizer.json, needed for texts (default: the model directory's)
	Texts        []string  `json:"texts"`
	Prompts      [][]int32 `json:"prompts"` // token ids, used as given
	MaxNewTokens int       `json:"max_new_tokens"`
	Temperature  float64   `json:"temperature"`
	Seed         uint64    `json:"seed"`
	StopTokenIDs []int32   `json:"stop_token_ids"`
	Resources    Resources `json:"resources" schema:"open"`
}

// generation is one line of generations.jsonl.
type generation struct {
	PromptIDs []int32 `json:"prompt_ids"`
	IDs       []int32 `json:"ids"`
	Text      string  `json:"text,omitempty"`
}

func runGenerate(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	cfg := generateConfig{MaxNewTokens: 64}
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	if cfg.Model == "" {
		return &sdk.Diagnostic{Summary: "gomlx/generate needs model (an HF or checkpoint directory)", Attribute: "model"}
	}
	if len(cfg.Texts) == 0 && len(cfg.Prompts) == 0 {
		return &sdk.Diagnostic{Summary: "gomlx/generate needs texts or prompts", Attribute: "texts"}
	}
	opts, err := cfg.Resources.Options()
	if err != nil {
		return err
	}
	modelDir, err := sdk.LocalPath(cfg.Model)
	if err != nil {
		return &sdk.Diagnostic{Summary: "model: " + err.Error(), Attribute: "model"}
	}
	out, err := sdk.LocalPath(req.OutputPath)
	if err != nil {
		return fmt.Errorf("output path: %w", err)
	}
	var tok *tokenizer.Tokenizer
	tokPath := cfg.Tokenizer
	if tokPath == "" {
		if _, err := os.Stat(filepath.Join(modelDir, "tokenizer.json")); err == nil {
			tokPath = filepath.Join(modelDir, "tokenizer.json")
		}
	}
	if tokPath != "" {
		p, err := sdk.LocalPath(tokPath)
		if err != nil {
			return &sdk.Diagnostic{Summary: "tokenizer: " + err.Error(), Attribute: "tokenizer"}
		}
		if tok, err = tokenizer.FromFile(p); err != nil {
			return &sdk.Diagnostic{Summary: err.Error(), Attribute: "tokenizer"}
		}
	}
	prompts := append([][]int32(nil), cfg.Prompts...)
	if len(cfg.Texts) > 0 {
		if tok == nil {
			return &sdk.Diagnostic{Summary: "texts need a tokenizer: give tokenizer or put tokenizer.json in the model directory", Attribute: "tokenizer"}
		}
		for _, text := range cfg.Texts {
			ids := tok.Encode(text, tokenizer.EncodeOptions{AddSpecialTokens: true})
			p := make([]int32, len(ids))
			for i, id := range ids {
				p[i] = int32(id)
			}
			prompts = append(prompts, p)
		}
	}
	r.Log("info", "loading model", "dir", modelDir, "engine", opts.Engine)
	m, err := LoadHF(modelDir, opts)
	if err != nil {
		return err
	}
	defer m.Close()
	var lines []generation
	stop := make([]uint32, len(cfg.StopTokenIDs))
	for i, id := range cfg.StopTokenIDs {
		stop[i] = uint32(id)
	}
	for i0 := 0; i0 < len(prompts); i0 += generateRows {
		group := prompts[i0:min(len(prompts), i0+generateRows)]
		in := make([][]uint32, len(group))
		for r, p := range group {
			if len(p) == 0 {
				return fmt.Errorf("prompt %d is empty", i0+r)
			}
			in[r] = make([]uint32, len(p))
			for j, id := range p {
				if id < 0 {
					return fmt.Errorf("prompt %d: token %d is negative", i0+r, id)
				}
				in[r][j] = uint32(id)
			}
		}
		dec, err := m.NewDecoder(len(group), 0)
		if err != nil {
			return err
		}
		// Row r draws from the stream seeded seed+i0+r: prompt i's seed is seed+i.
		opts := sample.Options{MaxNewTokens: cfg.MaxNewTokens, Sampling: sample.Sampling{Temperature: cfg.Temperature, Seed: cfg.Seed + uint64(i0)}, Stop: stop}
		res, err := sample.Generate(ctx, dec, in, opts, nil)
		dec.Close()
		if err != nil {
			return fmt.Errorf("prompts %d..%d: %w", i0, i0+len(group)-1, err)
		}
		for r, g := range res {
			ids := g.Tokens
			if g.Stopped { // the op's output keeps the stop token
				ids = append(ids, g.StopID)
			}
			line := generation{PromptIDs: group[r], IDs: make([]int32, len(ids))}
			for j, id := range ids {
				line.IDs[j] = int32(id)
			}
			if tok != nil {
				line.Text = tok.Decode(ids, true)
			}
			lines = append(lines, line)
		}
		r.Progress(float64(i0+len(group)), float64(len(prompts)), "prompts", "")
	}
	return writeJSONL(filepath.Join(out, "generations.jsonl"), lines)
}

func writeJSONL(path string, rows []generation) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var sb strings.Builder
	w := bufio.NewWriter(&sb)
	enc := json.NewEncoder(w)
	for _, row := range rows {
		if err := enc.Encode(row); err != nil {
			return err
		}
	}
	w.Flush()
	return storage.WriteAtomic(context.Background(), path, []byte(sb.String()))
}
