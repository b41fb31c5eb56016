package transformer

import (
	"math"

	"github.com/marin-go/marin/backends/model/llama"
)

// This file is an independent float64 implementation of the model, written
// for clarity (naive loops, no kernels, no blocking), used as the oracle for
// forward values and, by finite differences, for gradients.

type refParams map[string][]float64

func toRef(p *llama.Params) refParams {
	r := refParams{}
	for _, t := range p.Tensors() {
		v := make([]float64, len(t.Data))
		for i, x := range t.Data {
			v[i] = float64(x)
		}
		r[t.Name] = v
	}
	return r
}

func (r refParams) clone() refParams {
	c := refParams{}
	for k, v := range r {
		c[k] = append([]float64(nil), v...)
	}
	return c
}

// refInvFreq is HF's inverse-frequency rule in float64.
func refInvFreq(cfg llama.Config) []float64 {
	cfg = cfg.Normalized()
	half := cfg.HeadDim / 2
	inv := make([]float64, half)
	for i := range inv {
		inv[i] = 1 / math.Pow(cfg.RopeTheta, float64(2*i)/float64(cfg.HeadDim))
	}
	rs := cfg.RopeScaling
	if rs == nil {
		return inv
	}
	switch rs.RopeType {
	case "linear":
		for i := range inv {
			inv[i] /= rs.Factor
		}
	case "llama3":
		lowW := float64(rs.OriginalMaxPositionEmbeddings) / rs.LowFreqFactor
		highW := float64(rs.OriginalMaxPositionEmbeddings) / rs.HighFreqFactor
		for i, f := range inv {
			w := 2 * math.Pi / f
			switch {
			case w < highW:
			case w > lowW:
				inv[i] = f / rs.Factor
			default:
				s := (float64(rs.OriginalMaxPositionEmbeddings)/w - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				inv[i] = (1-s)*f/rs.Factor + s*f
			}
		}
	}
	return inv
}

func refRMSNorm(x []float64, w []float64, eps float64) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	r := 1 / math.Sqrt(ss/float64(len(x))+eps)
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = w[i] * v * r
	}
	return y
}

// refLinear returns x·Wᵀ + b for one row x; W is [out, in].
func refLinear(x []float64, w []float64, b []float64, out int) []float64 {
	in := len(x)
	y := make([]float64, out)
	for o := 0; o < out; o++ {
		s := 0.0
		for i := 0; i < in; i++ {
			s += w[o*in+i] * x[i]
		}
		if b != nil {
			s += b[o]
		}
		y[o] = s
	}
	return y
}

func refRope(x []float64, pos int, inv []float64, nHeads int) {
	half := len(inv)
	for h := 0; h < nHeads; h++ {
		for i := 0; i < half; i++ {
			a, b := x[h*2*half+i], x[h*2*half+half+i]
			s, c := math.Sincos(float64(pos) * inv[i])
			x[h*2*half+i] = a*c - b*s
			x[h*2*half+half+i] = b*c + a*s
		}
	}
}

// refAttention computes attention for one row of a batch: q [T][H·hd], k, v
// [T][KV·hd], segs [T].
func refAttention(q, k, v [][]float64, segs []int32, H, KV, hd int) [][]float64 {
	T := len(q)
	out := make([][]float64, T)
	group := H / KV
	scale := 1 / math.Sqrt(float64(hd))
	for t := 0; t < T; t++ {
		out[t] = make([]float64, H*hd)
		if segs[t] < 0 {
			continue
		}
		for h := 0; h < H; h++ {
			kh := h / group
			var keys []int
			for j := 0; j <= t; j++ {
				if segs[j] == segs[t] {
					keys = append(keys, j)
				}
			}
			sc := make([]float64, len(keys))
			m := math.Inf(-1)
			for n, j := range keys {
				s := 0.0
				for d := 0; d < hd; d++ {
					s += q[t][h*hd+d] * k[j][kh*hd+d]
				}
				sc[n] = s * scale
				m = math.Max(m, sc[n])
			}
			var z float64
			for n := range sc {
				sc[n] = math.Exp(sc[n] - m)
				z += sc[n]
			}
			for n, j := range keys {
				p := sc[n] / z
				for d := 0; d < hd; d++ {
					out[t][h*hd+d] += p * v[j][kh*hd+d]
				}
			}
		}
	}
	return out
}

func silu(x float64) float64 { return x / (1 + math.Exp(-x)) }

// refHidden returns the final-norm output for every position of b.
func refHidden(cfg llama.Config, p refParams, b *llama.Batch) [][]float64 {
	cfg = cfg.Normalized()
	d, F := cfg.HiddenSize, cfg.IntermediateSize
	H, KV, hd := cfg.NumAttentionHeads, cfg.NumKeyValueHeads, cfg.HeadDim
	inv := refInvFreq(cfg)
	pos := b.DerivedPositions()
	emb := p["model.embed_tokens.weight"]
	var result [][]float64
	for r := 0; r < b.B; r++ {
		T := b.T
		x := make([][]float64, T)
		segs := make([]int32, T)
		for t := 0; t < T; t++ {
			tok := int(b.Tokens[r*T+t])
			x[t] = append([]float64(nil), emb[tok*d:tok*d+d]...)
			segs[t] = b.Segment(r*T + t)
		}
		for l := 0; l < cfg.NumHiddenLayers; l++ {
			pre := "model.layers." + itoa(l) + "."
			q := make([][]float64, T)
			k := make([][]float64, T)
			v := make([][]float64, T)
			for t := 0; t < T; t++ {
				h := refRMSNorm(x[t], p[pre+"input_layernorm.weight"], cfg.RMSNormEps)
				q[t] = refLinear(h, p[pre+"self_attn.q_proj.weight"], p[pre+"self_attn.q_proj.bias"], H*hd)
				k[t] = refLinear(h, p[pre+"self_attn.k_proj.weight"], p[pre+"self_attn.k_proj.bias"], KV*hd)
				v[t] = refLinear(h, p[pre+"self_attn.v_proj.weight"], p[pre+"self_attn.v_proj.bias"], KV*hd)
				refRope(q[t], int(pos[r*T+t]), inv, H)
				refRope(k[t], int(pos[r*T+t]), inv, KV)
			}
			att := refAttention(q, k, v, segs, H, KV, hd)
			for t := 0; t < T; t++ {
				o := refLinear(att[t], p[pre+"self_attn.o_proj.weight"], p[pre+"self_attn.o_proj.bias"], d)
				for i := range o {
					x[t][i] += o[i]
				}
				h := refRMSNorm(x[t], p[pre+"post_attention_layernorm.weight"], cfg.RMSNormEps)
				g := refLinear(h, p[pre+"mlp.gate_proj.weight"], p[pre+"mlp.gate_proj.bias"], F)
				u := refLinear(h, p[pre+"mlp.up_proj.weight"], p[pre+"mlp.up_proj.bias"], F)
				a := make([]float64, F)
				for i := range a {
					a[i] = silu(g[i]) * u[i]
				}
				dn := refLinear(a, p[pre+"mlp.down_proj.weight"], p[pre+"mlp.down_proj.bias"], d)
				for i := range dn {
					x[t][i] += dn[i]
				}
			}
		}
		for t := 0; t < T; t++ {
			result = append(result, refRMSNorm(x[t], p["model.norm.weight"], cfg.RMSNormEps))
		}
	}
	return result
}

func refHeadWeight(cfg llama.Config, p refParams) []float64 {
	if w, ok := p["lm_head.weight"]; ok {
		return w
	}
	return p["model.embed_tokens.weight"]
}

// refLogits returns the logits of every position.
func refLogits(cfg llama.Config, p refParams, b *llama.Batch) [][]float64 {
	cfg = cfg.Normalized()
	hid := refHidden(cfg, p, b)
	w := refHeadWeight(cfg, p)
	out := make([][]float64, len(hid))
	for i, h := range hid {
		out[i] = refLinear(h, w, nil, cfg.VocabSize)
	}
	return out
}

// refLoss returns the summed cross-entropy and z-loss over trained positions.
func refLoss(cfg llama.Config, p refParams, b *llama.Batch, zw float64) (ce, z float64) {
	logits := refLogits(cfg, p, b)
	for i, on := range b.LossMask {
		if !on {
			continue
		}
		row := logits[i]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		var s float64
		for _, v := range row {
			s += math.Exp(v - m)
		}
		lse := m + math.Log(s)
		ce += lse - row[b.Tokens[i+1]]
		z += zw * lse * lse
	}
	return ce, z
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for i > 0 {
		b = append([]byte{byte('0' + i%10)}, b...)
		i /= 10
	}
	return string(b)
}
