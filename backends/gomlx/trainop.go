package gomlx

import (
	"github.com/marin-go/marin/backends/train"
	"github.com/marin-go/marin/plugins/sdk"
)

// OpTrain is the train op on this backend; steps with
// resources.backend = "gomlx" (or `marin --backend gomlx`) are sent here.
const OpTrain = "gomlx/train"

// Engine is the GoMLX engine as the train op sees it. Devices: auto (XLA
// when a PJRT plugin is configured by resources.pjrt_plugin or
// $MARIN_PJRT_PLUGIN, else GoMLX's pure-Go engine on the CPU), cpu (the
// pure-Go engine, or XLA's CPU plugin when one is named), cuda and tpu (XLA
// through the PJRT plugin, which must be configured).
var Engine = train.EngineSpec{
	Name:    PluginName,
	Devices: []string{"auto", "cpu", "cuda", "tpu"},
	New: func(cfg *train.Config) (train.EngineFactory, error) {
		opts, err := stepOptions(cfg)
		if err != nil {
			return nil, err
		}
		return EngineFactory(opts), nil
	},
	Profile: func(cfg *train.Config) (train.Profile, error) {
		opts, err := stepOptions(cfg)
		if err != nil {
			return train.Profile{}, err
		}
		return train.Profile{Precision: opts.policy(), Checkpointing: opts.checkpointing(), Devices: opts.Devices}, nil
	},
	Plan: func(res train.Resources) []*sdk.Diagnostic {
		r := resourcesOf(res)
		if r.Device != "cuda" && r.Device != "tpu" && r.PJRTPlugin == "" {
			return nil
		}
		opts, err := r.Options()
		if err == nil {
			_, err = opts.backendConfig()
		}
		if err != nil {
			attr := "resources.device"
			if r.PJRTPlugin != "" {
				attr = "resources.pjrt_plugin"
			}
			return []*sdk.Diagnostic{{Summary: err.Error(), Attribute: attr}}
		}
		return nil
	},
}

// stepOptions are the engine options of a train step: its resources, its
// precision policy and checkpointing.
func stepOptions(cfg *train.Config) (Options, error) {
	opts, err := resourcesOf(cfg.Resources).Options()
	if err != nil {
		return Options{}, err
	}
	if cfg.Precision != "" {
		p, err := train.ParsePrecision(cfg.Precision)
		if err != nil {
			return Options{}, &sdk.Diagnostic{Summary: err.Error(), Attribute: "precision"}
		}
		opts.Precision = p
	}
	opts.Checkpointing = cfg.GradientCheckpointing
	return opts, nil
}

func resourcesOf(res train.Resources) Resources {
	r := Resources{Backend: PluginName, Device: res.Device, NumDevices: res.NumDevices}
	if res.PJRTPlugin != nil {
		r.PJRTPlugin = *res.PJRTPlugin
	}
	return r
}
