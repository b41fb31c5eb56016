package optim

import (
	"math"
	"strings"
	"testing"
)

func ptr(v float64) *float64 { return &v }

func TestScheduleKeySteps(t *testing.T) {
	cases := []struct {
		name  string
		cfg   ScheduleConfig
		steps int
		want  map[int]float64
	}{
		{
			// warmup int(0.1·100)=10 steps from 0, then linear 1 → 0.1 over 90.
			name: "linear", cfg: ScheduleConfig{LearningRate: 1, Schedule: "linear", MinLRRatio: 0.1, Warmup: 0.1}, steps: 100,
			want: map[int]float64{0: 0, 5: 0.5, 9: 0.9, 10: 1, 55: 1 - 0.9*45.0/90, 99: 1 - 0.9*89.0/90, 100: 0.1, 150: 0.1},
		},
		{
			// Marin SFT defaults: warmup 0.03, decay (cooldown) 0.0 of 3834
			// steps: int(115.02) = 115 warmup steps, then constant.
			name: "sft_default", cfg: ScheduleConfig{LearningRate: 5e-6, Schedule: "linear", Warmup: 0.03, Decay: ptr(0)}, steps: 3834,
			want: map[int]float64{0: 0, 1: 5e-6 / 115, 114: 5e-6 * 114 / 115, 115: 5e-6, 2000: 5e-6, 3833: 5e-6},
		},
		{
			// 10 warmup steps (a whole number > 1 is steps), cosine over 100 to 0.
			name: "cosine", cfg: ScheduleConfig{LearningRate: 2, Schedule: "cosine", Warmup: 10}, steps: 110,
			want: map[int]float64{0: 0, 10: 2, 35: 2 * 0.5 * (1 + math.Cos(math.Pi/4)), 60: 1, 110: 0},
		},
		{
			name: "cosine_min_ratio", cfg: ScheduleConfig{LearningRate: 1, Schedule: "cosine", MinLRRatio: 0.1}, steps: 50,
			want: map[int]float64{0: 1, 25: 0.1 + 0.9*0.5, 50: 0.1},
		},
		{
			name: "constant", cfg: ScheduleConfig{LearningRate: 3, Schedule: "constant", Warmup: 4}, steps: 20,
			want: map[int]float64{0: 0, 2: 1.5, 4: 3, 19: 3},
		},
		{
			// warmup 2, stable 5 (decay 3 steps), linear to 0.
			name: "warmup_stable_decay", cfg: ScheduleConfig{LearningRate: 1, Schedule: "linear", Warmup: 2, Decay: ptr(3)}, steps: 10,
			want: map[int]float64{1: 0.5, 2: 1, 6: 1, 7: 1, 8: 2.0 / 3, 9: 1.0 / 3, 10: 0},
		},
		{
			// Two cycles of 10: warmup 2 then linear 1 → 0 over 8; the
			// second re-warms over int(0.5·10)=5 steps from 0 and decays
			// over the remaining 5.
			name: "cycles", cfg: ScheduleConfig{LearningRate: 1, Schedule: "linear", Warmup: 2, Rewarmup: 0.5, Cycles: 2}, steps: 20,
			want: map[int]float64{0: 0, 2: 1, 6: 0.5, 10: 0, 12: 0.4, 15: 1, 17: 0.6, 20: 0},
		},
		{
			// Deprecated cooldown: 20 of 100 steps carved off; constant main
			// schedule, then linear from 1 to min 0.
			name: "cooldown", cfg: ScheduleConfig{LearningRate: 1, Schedule: "constant", Cooldown: 0.2}, steps: 100,
			want: map[int]float64{0: 1, 79: 1, 80: 1, 90: 0.5, 100: 0},
		},
	}
	for _, c := range cases {
		s, err := NewSchedule(c.cfg, c.steps)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		for step, want := range c.want {
			if got := s.LR(step); math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
				t.Errorf("%s: LR(%d) = %.15g, want %.15g", c.name, step, got, want)
			}
		}
	}
}

func TestScheduleErrors(t *testing.T) {
	bad := []struct {
		cfg   ScheduleConfig
		steps int
		msg   string
	}{
		{ScheduleConfig{LearningRate: 1, Schedule: "cosine", Decay: ptr(0)}, 10, "cosine"},
		{ScheduleConfig{LearningRate: 1, Schedule: "linear", Warmup: 1.5}, 10, "warmup"},
		{ScheduleConfig{LearningRate: 1, Schedule: "linear", Warmup: 8, Decay: ptr(5)}, 10, "exceed"},
		{ScheduleConfig{LearningRate: 1, Schedule: "inv_sqrt"}, 10, "not supported"},
		{ScheduleConfig{LearningRate: 1, Schedule: "linear"}, 0, "num_train_steps"},
	}
	for _, b := range bad {
		if _, err := NewSchedule(b.cfg, b.steps); err == nil || !strings.Contains(err.Error(), b.msg) {
			t.Errorf("%+v: error %v, want one mentioning %q", b.cfg, err, b.msg)
		}
	}
}

func TestLevanterWeightDecay(t *testing.T) {
	for name, want := range map[string]bool{
		"model.embed_tokens.weight":                      false,
		"model.layers.0.input_layernorm.weight":          false,
		"model.layers.3.post_attention_layernorm.weight": false,
		"model.norm.weight":                              false,
		"model.layers.0.self_attn.q_proj.bias":           false,
		"model.layers.0.self_attn.q_proj.weight":         true,
		"model.layers.0.self_attn.o_proj.weight":         true,
		"model.layers.0.mlp.down_proj.weight":            true,
		"lm_head.weight":                                 true,
	} {
		if got := LevanterWeightDecay(name); got != want {
			t.Errorf("LevanterWeightDecay(%q) = %v, want %v", name, got, want)
		}
	}
}
