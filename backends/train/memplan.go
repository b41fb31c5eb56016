package train

import (
	"fmt"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/plugins/sdk"
)

// The memory plan of a train step, shown by --dry-run: the estimated peak
// bytes per device of the step as configured, and of its alternatives
// (other precision policies, LoRA) for comparison; planning fails with the
// numbers when the step's peak exceeds resources.device_memory.

// loraSizeOf is the size of the step's LoRA adapter over model c (nil
// for full fine-tuning, or when the lora config is wrong: planLoRA says
// so).
func loraSizeOf(cfg *Config, c llama.Config) *LoRASize {
	if cfg.Lora == nil {
		return nil
	}
	spec, err := cfg.Lora.Spec()
	if err != nil {
		return nil
	}
	s, err := lora.Measure(spec, c)
	if err != nil {
		return nil
	}
	return &LoRASize{R: spec.R, Size: s}
}

// defaultLoRA is the LoRA adapter the plan shows as an alternative to full
// fine-tuning: r 16 over every linear projection.
func defaultLoRA(c llama.Config) *LoRASize {
	spec := lora.Spec{R: 16, Alpha: 16, Targets: lora.Targets{Pattern: lora.AllLinear}}
	s, err := lora.Measure(spec, c)
	if err != nil {
		return nil
	}
	return &LoRASize{R: spec.R, Size: s}
}

// microBatchFor picks the micro-batch (sequences per pass, all devices
// together) of a step and returns its plan: micro_batch_size when set;
// else, with a device memory limit, the largest divisor of
// train_batch_size that splits evenly over the devices and fits (the
// smallest when none does); without a limit, the smallest.
func microBatchFor(cfg *Config, base MemoryRequest, limit int64) (int, MemoryPlan, error) {
	B, N := cfg.TrainBatchSize, max(1, base.Devices)
	planOf := func(m int) (MemoryPlan, error) {
		r := base
		r.Rows = max(1, m/N)
		r.Accumulate = m < B
		return PlanMemory(r)
	}
	if cfg.MicroBatchSize > 0 {
		p, err := planOf(cfg.MicroBatchSize)
		return cfg.MicroBatchSize, p, err
	}
	best, plan := 0, MemoryPlan{}
	for m := 1; m <= B; m++ {
		if B%m != 0 || (m%N != 0 && m != B) {
			continue
		}
		p, err := planOf(m)
		if err != nil {
			return 0, MemoryPlan{}, err
		}
		if best == 0 || p.Fits(limit) {
			best, plan = m, p
		}
		if limit <= 0 || !p.Fits(limit) {
			break // plans grow with the micro-batch
		}
	}
	return best, plan, nil
}

// requestFor is the memory request of cfg on an engine with prof, for
// model c.
func requestFor(cfg *Config, c llama.Config, prof Profile, l *LoRASize) MemoryRequest {
	return MemoryRequest{Model: c, SeqLen: cfg.MaxSeqLen, Precision: prof.Precision,
		Checkpointing: prof.Checkpointing, Devices: max(1, prof.Devices), LoRA: l}
}

// planMemory adds the memory plan's notes, and a diagnostic when the peak
// exceeds the device memory the resources declare.
func planMemory(res *sdk.PlanResult, req *sdk.PlanRequest, cfg *Config, c llama.Config, prof Profile, e EngineSpec) {
	var limit int64
	if cfg.Resources.DeviceMemory != "" {
		var err error
		if limit, err = ParseBytes(cfg.Resources.DeviceMemory); err != nil {
			res.Errorf("resources.device_memory", "%v", err)
			return
		}
	}
	l := loraSizeOf(cfg, c)
	if cfg.Lora != nil && l == nil {
		return // planLoRA reports what is wrong with the lora config
	}
	base := requestFor(cfg, c, prof, l)
	micro, p, err := microBatchFor(cfg, base, limit)
	if err != nil {
		res.Errorf("model_config", "memory plan: %v", err)
		return
	}
	devNote := ""
	if prof.Devices == 0 {
		devNote = " (resources.num_devices not set: planned for one device)"
	}
	microNote := "micro_batch_size"
	if cfg.MicroBatchSize == 0 {
		microNote = "micro-batch chosen from the plan"
		if limit == 0 {
			microNote = "micro_batch_size not set: planned with the smallest micro-batch"
		}
	}
	lines := p.Lines()
	fit := "no device_memory declared in the resources"
	if limit > 0 {
		fit = fmt.Sprintf("fits %s", FormatBytes(limit))
		if !p.Fits(limit) {
			fit = fmt.Sprintf("EXCEEDS %s", FormatBytes(limit))
		}
	}
	res.Notes = append(res.Notes, fmt.Sprintf("memory plan: %s (%s)%s", lines[0], fit, devNote),
		lines[1], fmt.Sprintf("  micro-batch %d of %d sequences (%s)", micro, cfg.TrainBatchSize, microNote))
	if alt := alternatives(cfg, c, prof, l, e, limit); alt != "" {
		res.Notes = append(res.Notes, "  alternatives: "+alt)
	}
	if limit > 0 && !p.Fits(limit) {
		attr := "precision"
		if l != nil {
			attr = "lora"
		}
		res.Diagnostics = append(res.Diagnostics, &sdk.Diagnostic{
			Summary: fmt.Sprintf("the step does not fit one device: estimated peak %s per device exceeds resources.device_memory %s (weights %s, gradients %s, optimizer state %s, activations %s, logits %s, workspace %s; %s)",
				FormatBytes(p.Peak), FormatBytes(limit), FormatBytes(p.Weights), FormatBytes(p.Gradients), FormatBytes(p.Optimizer),
				FormatBytes(p.Activations), FormatBytes(p.Logits), FormatBytes(p.Workspace), p.Summary()),
			Detail:    "use a leaner precision (precision = \"lean\"), gradient_checkpointing = True, a smaller micro_batch_size, LoRA, or more devices (resources.num_devices)",
			Attribute: attr,
		})
	}
}

// alternatives compares the step's plan with the engine's other ways of
// running it: the precision policies it supports, with checkpointing, and
// LoRA when the step is a full fine-tune.
func alternatives(cfg *Config, c llama.Config, prof Profile, l *LoRASize, e EngineSpec, limit int64) string {
	var parts []string
	on := true
	for _, name := range []string{"f32", "mixed", "lean"} {
		alt := *cfg
		alt.Precision, alt.GradientCheckpointing = name, &on
		ap, err := e.ProfileOf(&alt)
		if err != nil {
			continue
		}
		if ap.Precision == prof.Precision && ap.Checkpointing == prof.Checkpointing && l == nil {
			continue // the step itself
		}
		micro, p, err := microBatchFor(&alt, requestFor(&alt, c, ap, nil), limit)
		if err == nil {
			parts = append(parts, fmt.Sprintf("%s full fine-tuning %s", name, verdict(p, micro, limit)))
		}
	}
	if d := defaultLoRA(c); l == nil && d != nil {
		micro, p, err := microBatchFor(cfg, requestFor(cfg, c, prof, d), limit)
		if err == nil {
			parts = append(parts, fmt.Sprintf("LoRA r=%d all-linear (%s) %s", d.R, prof.Precision, verdict(p, micro, limit)))
		}
	}
	return strings.Join(parts, "; ")
}

func verdict(p MemoryPlan, micro int, limit int64) string {
	s := fmt.Sprintf("%s at micro-batch %d", FormatBytes(p.Peak), micro)
	switch {
	case limit <= 0:
		return s
	case p.Fits(limit):
		return s + " (fits)"
	}
	return s + " (does not fit)"
}
