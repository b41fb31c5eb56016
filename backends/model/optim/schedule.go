package optim

import (
	"fmt"
	"math"
)

// ScheduleConfig mirrors the learning-rate fields of Levanter's
// OptimizerConfig (marin-community/levanter, src/levanter/optim/config.py).
//
// Step counts given as float64 follow Levanter's _convert_frac_or_steps: a
// value in [0, 1] is a fraction of the relevant span (truncated toward zero,
// as Python's int()), a whole number above 1 is a number of steps; anything
// else is an error. Note that 1.0 means the whole span, not one step.
type ScheduleConfig struct {
	LearningRate float64
	// Schedule is the decay shape: "constant", "linear" or "cosine".
	Schedule string
	// MinLRRatio is where decay ends, as a fraction of LearningRate.
	MinLRRatio float64
	// Warmup is linear warmup from 0 (fraction of the first cycle, or
	// steps).
	Warmup float64
	// Decay is the decay length (fraction of each cycle, or steps); nil
	// means the rest of the cycle after warmup. Steps between warmup and
	// decay hold the peak rate. Marin's SimpleSFTConfig passes its
	// cooldown (default 0.0) here, which gives warmup then a constant rate.
	Decay *float64
	// Rewarmup is the warmup of cycles after the first, from the previous
	// cycle's final rate.
	Rewarmup float64
	// Cycles splits training into this many equal cycles (0 or 1: one).
	Cycles int
	// Cooldown is Levanter's deprecated cooldown: a final linear ramp from
	// the main schedule's last rate to the minimum, over this fraction or
	// number of steps, carved off the end. 0 disables it.
	Cooldown float64
}

// Schedule is a learning-rate schedule over a fixed number of steps,
// computed exactly as Levanter builds it from optax pieces
// (linear_schedule, constant_schedule, cosine_decay_schedule joined by
// join_schedules). LR(step) is the rate of the update applied at 0-based
// step `step`; as in optax, step 0 of a warmup has rate 0. Values are
// computed in float64 (optax uses float32, so the two agree to float32
// rounding).
type Schedule struct {
	parts      []func(step int) float64
	boundaries []int
}

func convertFracOrSteps(what string, v float64, n int) (int, error) {
	if v < 0 || (v > 1 && v != math.Trunc(v)) || math.IsNaN(v) {
		return 0, fmt.Errorf("%s %g: must be a fraction in [0, 1] or a whole number of steps", what, v)
	}
	if v <= 1 {
		return int(v * float64(n)), nil
	}
	return int(v), nil
}

func linearSchedule(init, end float64, steps int) func(int) float64 {
	if steps <= 0 {
		return func(int) float64 { return init }
	}
	return func(count int) float64 {
		c := min(max(count, 0), steps)
		f := 1 - float64(c)/float64(steps)
		return (init-end)*f + end
	}
}

func constantSchedule(v float64) func(int) float64 { return func(int) float64 { return v } }

func cosineSchedule(init float64, steps int, alpha float64) func(int) float64 {
	return func(count int) float64 {
		c := min(max(count, 0), steps)
		cos := 0.5 * (1 + math.Cos(math.Pi*float64(c)/float64(steps)))
		return init * ((1-alpha)*cos + alpha)
	}
}

// NewSchedule builds the schedule for numTrainSteps updates.
func NewSchedule(cfg ScheduleConfig, numTrainSteps int) (*Schedule, error) {
	if numTrainSteps <= 0 {
		return nil, fmt.Errorf("lr schedule: num_train_steps %d must be positive", numTrainSteps)
	}
	if !(cfg.LearningRate >= 0) {
		return nil, fmt.Errorf("lr schedule: learning rate %g must be non-negative", cfg.LearningRate)
	}
	switch cfg.Schedule {
	case "constant", "linear", "cosine":
	case "":
		return nil, fmt.Errorf("lr schedule: no schedule named (constant, linear or cosine)")
	default:
		return nil, fmt.Errorf("lr schedule: %q is not supported (constant, linear or cosine)", cfg.Schedule)
	}
	cooldown := 0
	if cfg.Cooldown != 0 {
		c, err := convertFracOrSteps("lr schedule: cooldown", cfg.Cooldown, numTrainSteps)
		if err != nil {
			return nil, err
		}
		cooldown = c
	}
	main := numTrainSteps - cooldown
	if main <= 0 {
		return nil, fmt.Errorf("lr schedule: cooldown of %d steps leaves none of %d", cooldown, numTrainSteps)
	}
	// Cycle end points, as _get_cycle_minima.
	points := []int{0}
	if cfg.Cycles > 1 {
		for i := 0; i < cfg.Cycles-1; i++ {
			points = append(points, int(float64(main)/float64(cfg.Cycles)*float64(i+1)))
		}
	} else if cfg.Cycles < 0 {
		return nil, fmt.Errorf("lr schedule: cycles %d is negative", cfg.Cycles)
	}
	if points[len(points)-1] != main {
		points = append(points, main)
	}
	lr := cfg.LearningRate
	minLR := lr * cfg.MinLRRatio
	s := &Schedule{}
	previousEnd := 0.0
	var last func(int) float64
	lastDecay := 0
	for c := 0; c+1 < len(points); c++ {
		start, end := points[c], points[c+1]
		cycle := end - start
		wv, wname := cfg.Warmup, "warmup"
		if c > 0 {
			wv, wname = cfg.Rewarmup, "rewarmup"
		}
		warm, err := convertFracOrSteps("lr schedule: "+wname, wv, cycle)
		if err != nil {
			return nil, err
		}
		if warm != 0 {
			s.parts = append(s.parts, linearSchedule(previousEnd, lr, warm))
			s.boundaries = append(s.boundaries, start+warm)
		}
		decay := cycle - warm
		if cfg.Decay != nil {
			if decay, err = convertFracOrSteps("lr schedule: decay", *cfg.Decay, cycle); err != nil {
				return nil, err
			}
		}
		stable := cycle - warm - decay
		if stable < 0 {
			return nil, fmt.Errorf("lr schedule: warmup %d + decay %d steps exceed the cycle's %d", warm, decay, cycle)
		}
		if stable != 0 {
			s.parts = append(s.parts, constantSchedule(lr))
			s.boundaries = append(s.boundaries, start+warm+stable)
		}
		var sch func(int) float64
		switch cfg.Schedule {
		case "constant":
			sch = constantSchedule(lr)
		case "linear":
			sch = linearSchedule(lr, minLR, decay)
		case "cosine":
			if decay <= 0 {
				return nil, fmt.Errorf("lr schedule: cosine decay needs a positive number of decay steps (optax refuses %d)", decay)
			}
			sch = cosineSchedule(lr, decay, cfg.MinLRRatio)
		}
		previousEnd = sch(decay)
		s.parts = append(s.parts, sch)
		s.boundaries = append(s.boundaries, end)
		last, lastDecay = sch, decay
	}
	if cooldown != 0 {
		s.parts = append(s.parts, linearSchedule(last(lastDecay), minLR, cooldown))
	}
	return s, nil
}

// LR is the learning rate of the update at 0-based step, as optax's
// join_schedules evaluates it: the last part whose start boundary is at or
// before step, at step − boundary.
func (s *Schedule) LR(step int) float64 {
	v := s.parts[0](step)
	for i := 0; i+1 < len(s.parts); i++ {
		if b := s.boundaries[i]; step >= b {
			v = s.parts[i+1](step - b)
		}
	}
	return v
}
