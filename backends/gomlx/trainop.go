package gomlx

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/optim"
	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/plugins/sdk"
)

// OpTrain is the train op on this backend; steps with
// resources.backend = "gomlx" (or `marin --backend gomlx`) are sent here.
const OpTrain = "gomlx/train"

// EngineFactory returns a backends/train engine that runs on GoMLX with opts.
func EngineFactory(opts Options) train.EngineFactory {
	return func(params *llama.Params, acfg optim.AdamWConfig, zLossWeight float64) (train.Engine, error) {
		cfgJSON, err := json.Marshal(params.Config)
		if err != nil {
			return nil, fmt.Errorf("gomlx: model config: %w", err)
		}
		w := map[string][]float32{}
		for _, t := range params.Tensors() {
			w[t.Name] = t.Data
		}
		m, err := NewFromJSON(cfgJSON, w, opts)
		if err != nil {
			return nil, err
		}
		eng := &closingEngine{TrainEngine{M: m}}
		eng.SetAdamW(acfg, zLossWeight)
		return eng, nil
	}
}

// closingEngine releases the GoMLX model when the train job ends.
type closingEngine struct{ TrainEngine }

func (e *closingEngine) Close() { _ = e.M.Close() }

func runTrain(ctx context.Context, req *sdk.Request, r sdk.Reporter) error {
	var cfg struct {
		Resources Resources `json:"resources"`
	}
	if err := req.Decode(&cfg); err != nil {
		return err
	}
	cfg.Resources.Backend = PluginName // routed here whatever the script said
	opts, err := cfg.Resources.Options()
	if err != nil {
		return err
	}
	return train.RunWith(ctx, req, r, PluginName, EngineFactory(opts))
}
