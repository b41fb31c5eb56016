// Package optim is the optimizer every engine applies, declared once: AdamW's
// hyper-parameters (AdamWConfig), its state and that state's checkpoint
// format (State, ReadState), the weight-decay mask, and the learning-rate
// schedules of Levanter (the trainer behind Marin), reproduced step for
// step. The update itself runs in each engine: backends/cpu/adamw on the CPU,
// the GoMLX graph in backends/gomlx.
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
// A schedule gives each step's learning rate:
//
//	sched, err := optim.NewSchedule(optim.ScheduleConfig{LearningRate: 5e-6,
//		Schedule: "linear", Warmup: 0.03}, numTrainSteps)
//	lr := sched.LR(step)
//
// The optimizer state (step count and both moments, by parameter name)
// serialises with State.WriteTo and ReadState for checkpoints; the format
// carries a checksum, so a truncated or corrupted file is refused.
package optim
