// Package optim is the optimizer of the CPU backend: AdamW with global-norm
// gradient clipping, and the learning-rate schedules of Levanter (the
// trainer behind Marin), reproduced step for step.
//
// The update is optax's chain as Levanter's AdamConfig builds it:
//
//	clip_by_global_norm(max_grad_norm)       g ← g·max/‖g‖ when ‖g‖ ≥ max
//	scale_by_adam(β1, β2, ε)                 m ← β1·m+(1−β1)·g, v ← β2·v+(1−β2)·g²,
//	                                         u ← (m/(1−β1^t)) / (√(v/(1−β2^t)) + ε), t = step+1
//	add_decayed_weights(wd, mask)            u ← u + wd·θ   (masked parameters only)
//	scale(−lr)                               θ ← θ − lr·u
//
// Weight decay follows Levanter's default mask (LevanterWeightDecay): every
// weight matrix decays — attention and MLP projections and an untied
// lm_head — while embeddings, norm weights and biases do not.
//
// A training step, with llama's parameters, looks like:
//
//	params := make([]optim.Param, 0, len(p.Tensors()))
//	for i, t := range p.Tensors() {
//		params = append(params, optim.Param{Name: t.Name, Data: t.Data,
//			Grad: grads.Tensors()[i].Data, Decay: optim.LevanterWeightDecay(t.Name)})
//	}
//	opt, err := optim.NewAdamW(optim.DefaultAdamW(), params)
//	sched, err := optim.NewSchedule(optim.ScheduleConfig{LearningRate: 5e-6,
//		Schedule: "linear", Warmup: 0.03}, numTrainSteps)
//	...
//	grads.Zero(); model.LossAndGrad(...)      // accumulate micro-batches
//	info, err := opt.Step(params, sched.LR(int(opt.State.Step)))
//
// The optimizer state (step count and both moments, by parameter name)
// serialises with State.WriteTo and ReadState for checkpoints; the format
// carries a checksum, so a truncated or corrupted file is refused.
//
// All loops run over kernels.ParallelFor with fixed chunking: results are
// bit-identical for every thread count.
package optim
