package gomlx

import (
	"context"

	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/plugins/sdk"
)

// OpTrain is the train op on this backend; steps with
// resources.backend = "gomlx" (or `marin --backend gomlx`) are sent here.
const OpTrain = "gomlx/train"

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
