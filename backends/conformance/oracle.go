package conformance

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/marin-go/marin/backends/model/llama"
	"github.com/marin-go/marin/backends/model/lora"
	"github.com/marin-go/marin/backends/model/optim"
)

// The oracle is a deliberately plain float64 Llama written from Hugging
// Face's modeling_llama.py / modeling_qwen2.py, independent of every
// engine: its own config reading, RoPE frequencies and loops over rows,
// positions and heads; it shares only llama.Batch, the type it reads. Its
// gradients are central finite differences in float64 (error ~1e-10), so
// it checks every backend's hand-written or automatic backward pass.

type oracleConfig struct {
	ModelType         string  `json:"model_type"`
	VocabSize         int     `json:"vocab_size"`
	HiddenSize        int     `json:"hidden_size"`
	IntermediateSize  int     `json:"intermediate_size"`
	NumHiddenLayers   int     `json:"num_hidden_layers"`
	NumAttentionHeads int     `json:"num_attention_heads"`
	NumKeyValueHeads  int     `json:"num_key_value_heads"`
	HeadDim           int     `json:"head_dim"`
	RMSNormEps        float64 `json:"rms_norm_eps"`
	RopeTheta         float64 `json:"rope_theta"`
	TieWordEmbeddings bool    `json:"tie_word_embeddings"`
	AttentionBias     bool    `json:"attention_bias"`
	MLPBias           bool    `json:"mlp_bias"`
	RopeScaling       *struct {
		RopeType                      string  `json:"rope_type"`
		Factor                        float64 `json:"factor"`
		LowFreqFactor                 float64 `json:"low_freq_factor"`
		HighFreqFactor                float64 `json:"high_freq_factor"`
		OriginalMaxPositionEmbeddings float64 `json:"original_max_position_embeddings"`
	} `json:"rope_scaling"`
}

func parseOracleConfig(data []byte) (oracleConfig, error) {
	c := oracleConfig{ModelType: "llama", RMSNormEps: 1e-6, RopeTheta: 10000}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, err
	}
	if c.NumKeyValueHeads == 0 {
		c.NumKeyValueHeads = c.NumAttentionHeads
	}
	if c.HeadDim == 0 {
		c.HeadDim = c.HiddenSize / c.NumAttentionHeads
	}
	return c, nil
}

func (c oracleConfig) invFreq() []float64 {
	d := c.HeadDim
	inv := make([]float64, d/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(c.RopeTheta, float64(2*i)/float64(d))
	}
	rs := c.RopeScaling
	if rs == nil {
		return inv
	}
	switch rs.RopeType {
	case "linear":
		for i := range inv {
			inv[i] /= rs.Factor
		}
	case "llama3":
		lowWave := rs.OriginalMaxPositionEmbeddings / rs.LowFreqFactor
		highWave := rs.OriginalMaxPositionEmbeddings / rs.HighFreqFactor
		for i, f := range inv {
			wave := 2 * math.Pi / f
			switch {
			case wave < highWave:
			case wave > lowWave:
				inv[i] = f / rs.Factor
			default:
				s := (rs.OriginalMaxPositionEmbeddings/wave - rs.LowFreqFactor) / (rs.HighFreqFactor - rs.LowFreqFactor)
				inv[i] = (1-s)*f/rs.Factor + s*f
			}
		}
	}
	return inv
}

type oracle struct {
	cfg oracleConfig
	inv []float64
	w   map[string][]float64

	// LoRA: w also holds the adapter's tensors by PEFT's names; a tensor
	// named lora.Prefix+name replaces the base's name. loraScale is
	// lora_alpha/r (0: no adapter).
	loraScale float64
	// drop, when set, drops the adapters' inputs as a training pass does;
	// row is the batch row being computed (the token index is row·T+t).
	drop *lora.Dropout
	row  int
	T    int
}

func newOracle(configJSON []byte, weights map[string][]float32) (*oracle, error) {
	c, err := parseOracleConfig(configJSON)
	if err != nil {
		return nil, err
	}
	o := &oracle{cfg: c, inv: c.invFreq(), w: map[string][]float64{}}
	for k, v := range weights {
		o.w[k] = widen(v)
	}
	return o, nil
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func (o *oracle) param(name string) []float64 {
	if p, ok := o.w[lora.Prefix+name]; ok {
		return p
	}
	p, ok := o.w[name]
	if !ok {
		panic(fmt.Sprintf("oracle: no parameter %s", name))
	}
	return p
}

// linear maps x [n][in] through W [out][in] (+ bias when present), plus
// PEFT's LoRA term s·B·A·dropout(x) when the module has an adapter.
func (o *oracle) linear(x [][]float64, name string) [][]float64 {
	w := o.param(name + ".weight")
	b := o.w[lora.Prefix+name+".bias"]
	if b == nil {
		b = o.w[name+".bias"]
	}
	in := len(x[0])
	out := len(w) / in
	y := make([][]float64, len(x))
	for i, xi := range x {
		yi := make([]float64, out)
		for j := range out {
			s := 0.0
			row := w[j*in : (j+1)*in]
			for k, xk := range xi {
				s += xk * row[k]
			}
			if b != nil {
				s += b[j]
			}
			yi[j] = s
		}
		y[i] = yi
	}
	A, B := o.w[lora.Prefix+name+".lora_A.weight"], o.w[lora.Prefix+name+".lora_B.weight"]
	if A == nil {
		return y
	}
	r := len(A) / in
	layer, kind := oracleModule(name)
	for i, xi := range x {
		xd := append([]float64(nil), xi...)
		if o.drop != nil && o.drop.Rate > 0 {
			// The mask is lora's (the engines' shared definition); the
			// arithmetic is this oracle's.
			kt := lora.TokenKey(lora.ModuleKey(o.drop.Step, layer, kind), o.drop.Token0+uint32(o.row*o.T+i))
			thr := lora.Threshold(o.drop.Rate)
			for k := range xd {
				if lora.Keep(kt, k, thr) {
					xd[k] /= 1 - o.drop.Rate
				} else {
					xd[k] = 0
				}
			}
		}
		u := make([]float64, r)
		for q := range r {
			for k, v := range xd {
				u[q] += A[q*in+k] * v
			}
		}
		for j := range out {
			d := 0.0
			for q := range r {
				d += B[j*r+q] * u[q]
			}
			y[i][j] += o.loraScale * d
		}
	}
	return y
}

// oracleModule reads the layer and projection of model.layers.L.block.KIND.
func oracleModule(name string) (int, lora.Kind) {
	parts := strings.Split(name, ".")
	l, _ := strconv.Atoi(parts[2])
	for k := lora.Q; k < lora.NumKinds; k++ {
		if k.String() == parts[4] {
			return l, k
		}
	}
	panic("oracle: not a projection: " + name)
}

func (o *oracle) rmsNorm(x [][]float64, name string) [][]float64 {
	w := o.param(name)
	y := make([][]float64, len(x))
	for i, xi := range x {
		ms := 0.0
		for _, v := range xi {
			ms += v * v
		}
		r := 1 / math.Sqrt(ms/float64(len(xi))+o.cfg.RMSNormEps)
		yi := make([]float64, len(xi))
		for j, v := range xi {
			yi[j] = w[j] * v * r
		}
		y[i] = yi
	}
	return y
}

// rope rotates each head (width d) of x [s][heads·d] in place, HF's
// rotate_half convention (first half paired with second half).
func (o *oracle) rope(x [][]float64, pos []int32) {
	d := o.cfg.HeadDim
	half := d / 2
	for t, xt := range x {
		for h := 0; h < len(xt)/d; h++ {
			v := xt[h*d : (h+1)*d]
			for i := range half {
				a := float64(pos[t]) * o.inv[i]
				c, s := math.Cos(a), math.Sin(a)
				x1, x2 := v[i], v[i+half]
				v[i], v[i+half] = x1*c-x2*s, x2*c+x1*s
			}
		}
	}
}

// hidden returns one row's final normed hidden states.
func (o *oracle) hidden(tokens, segs, pos []int32) [][]float64 {
	c := o.cfg
	D := c.HiddenSize
	emb := o.param("model.embed_tokens.weight")
	S := len(tokens)
	h := make([][]float64, S)
	for t, tok := range tokens {
		h[t] = append([]float64(nil), emb[int(tok)*D:(int(tok)+1)*D]...)
	}
	H, KV, d := c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim
	rep := H / KV
	scale := 1 / math.Sqrt(float64(d))
	for l := range c.NumHiddenLayers {
		p := fmt.Sprintf("model.layers.%d.", l)
		x := o.rmsNorm(h, p+"input_layernorm.weight")
		q := o.linear(x, p+"self_attn.q_proj")
		k := o.linear(x, p+"self_attn.k_proj")
		v := o.linear(x, p+"self_attn.v_proj")
		o.rope(q, pos)
		o.rope(k, pos)
		att := make([][]float64, S)
		for t := range S {
			att[t] = make([]float64, H*d)
			for hd := range H {
				g := hd / rep
				qv := q[t][hd*d : (hd+1)*d]
				scores := make([]float64, t+1)
				mx := math.Inf(-1)
				for u := 0; u <= t; u++ {
					if segs[u] != segs[t] {
						scores[u] = math.Inf(-1)
						continue
					}
					s := 0.0
					for i := range d {
						s += qv[i] * k[u][g*d+i]
					}
					scores[u] = s * scale
					mx = math.Max(mx, scores[u])
				}
				sum := 0.0
				for u := range scores {
					scores[u] = math.Exp(scores[u] - mx)
					sum += scores[u]
				}
				for u, pu := range scores {
					for i := range d {
						att[t][hd*d+i] += pu / sum * v[u][g*d+i]
					}
				}
			}
		}
		a := o.linear(att, p+"self_attn.o_proj")
		for t := range h {
			for j := range h[t] {
				h[t][j] += a[t][j]
			}
		}
		x = o.rmsNorm(h, p+"post_attention_layernorm.weight")
		gate := o.linear(x, p+"mlp.gate_proj")
		up := o.linear(x, p+"mlp.up_proj")
		for t := range gate {
			for j, gv := range gate[t] {
				gate[t][j] = gv / (1 + math.Exp(-gv)) * up[t][j]
			}
		}
		m := o.linear(gate, p+"mlp.down_proj")
		for t := range h {
			for j := range h[t] {
				h[t][j] += m[t][j]
			}
		}
	}
	return o.rmsNorm(h, "model.norm.weight")
}

func (o *oracle) logits(h []float64) []float64 {
	name := "lm_head.weight"
	if o.cfg.TieWordEmbeddings {
		name = "model.embed_tokens.weight"
	}
	w := o.param(name)
	D := len(h)
	out := make([]float64, len(w)/D)
	for j := range out {
		s := 0.0
		for k, x := range h {
			s += x * w[j*D+k]
		}
		out[j] = s
	}
	return out
}

// loss is the masked mean next-token cross-entropy of a batch.
func (o *oracle) loss(b *llama.Batch) float64 { return o.objective(b, 0) }

// objective adds zLoss·logsumexp² per trained token to the loss.
func (o *oracle) objective(b *llama.Batch, zLoss float64) float64 {
	S := b.T
	sum, count := 0.0, 0.0
	o.T = S
	for r := range b.B {
		o.row = r
		h := o.hidden(b.Tokens[r*S:(r+1)*S], segments(b, r), positions(b, r))
		for t := range S - 1 {
			if !b.LossMask[r*S+t] {
				continue
			}
			m := 1.0
			lg := o.logits(h[t])
			mx := math.Inf(-1)
			for _, v := range lg {
				mx = math.Max(mx, v)
			}
			z := 0.0
			for _, v := range lg {
				z += math.Exp(v - mx)
			}
			lse := math.Log(z) + mx
			sum += m * (lse - lg[b.Tokens[r*S+t+1]] + zLoss*lse*lse)
			count += m
		}
	}
	return sum / math.Max(count, 1)
}

// segments returns row r's segment ids (all 0 when the batch has none).
func segments(b *llama.Batch, r int) []int32 {
	if b.Segments == nil {
		return make([]int32, b.T)
	}
	return b.Segments[r*b.T : (r+1)*b.T]
}

func positions(b *llama.Batch, r int) []int32 {
	S := b.T
	if b.Positions != nil {
		return b.Positions[r*S : (r+1)*S]
	}
	// Derived: each token's index inside its segment (0 for padding).
	segs := segments(b, r)
	p := make([]int32, S)
	for i := range p {
		switch seg := segs[i]; {
		case seg < 0:
		case i > 0 && segs[i-1] == seg:
			p[i] = p[i-1] + 1
		}
	}
	return p
}

// grads returns the objective's gradient by central differences.
func (o *oracle) grads(b *llama.Batch, zLoss float64) map[string][]float64 {
	names := make([]string, 0, len(o.w))
	for n := range o.w {
		names = append(names, n)
	}
	return o.gradsOf(names, b, zLoss)
}

// gradsOf is grads with respect to the named tensors only.
func (o *oracle) gradsOf(names []string, b *llama.Batch, zLoss float64) map[string][]float64 {
	const h = 1e-5
	out := map[string][]float64{}
	for _, name := range names {
		w := o.w[name]
		g := make([]float64, len(w))
		for i := range w {
			orig := w[i]
			w[i] = orig + h
			up := o.objective(b, zLoss)
			w[i] = orig - h
			down := o.objective(b, zLoss)
			w[i] = orig
			g[i] = (up - down) / (2 * h)
		}
		out[name] = g
	}
	return out
}

// nextLogits returns the next-token logits after each of toks (one
// document from position 0).
func (o *oracle) nextLogits(toks []int32) [][]float64 {
	segs := make([]int32, len(toks))
	pos := make([]int32, len(toks))
	for i := range pos {
		pos[i] = int32(i)
	}
	var out [][]float64
	for _, h := range o.hidden(toks, segs, pos) {
		out = append(out, o.logits(h))
	}
	return out
}

// greedy extends prompt by n argmax tokens (ties: the lowest id).
func (o *oracle) greedy(prompt []int32, n int) []int32 {
	toks := append([]int32(nil), prompt...)
	for range n {
		all := o.nextLogits(toks)
		lg := all[len(all)-1]
		best := 0
		for j, v := range lg {
			if v > lg[best] {
				best = j
			}
		}
		toks = append(toks, int32(best))
	}
	return toks[len(prompt):]
}

// adamStep applies optax's chain (clip_by_global_norm, scale_by_adam,
// add_decayed_weights on Levanter's mask, scale by −lr) in float64.
type oracleAdam struct {
	m, v  map[string][]float64
	steps int
}

// It returns the gradient's global norm before clipping.
func (o *oracle) adamStep(st *oracleAdam, g map[string][]float64, opt optim.AdamWConfig, lr float64, decay func(string) bool) float64 {
	if st.m == nil {
		st.m, st.v = map[string][]float64{}, map[string][]float64{}
		for k := range g {
			st.m[k] = make([]float64, len(o.w[k]))
			st.v[k] = make([]float64, len(o.w[k]))
		}
	}
	norm := 0.0
	for _, gs := range g {
		for _, x := range gs {
			norm += x * x
		}
	}
	norm = math.Sqrt(norm)
	scale := 1.0
	if opt.MaxGradNorm > 0 && !(norm < opt.MaxGradNorm) {
		scale = opt.MaxGradNorm / norm
	}
	st.steps++
	bc1 := 1 - math.Pow(opt.Beta1, float64(st.steps))
	bc2 := 1 - math.Pow(opt.Beta2, float64(st.steps))
	for k := range g { // the trained tensors
		w := o.w[k]
		m, v := st.m[k], st.v[k]
		for i := range w {
			gi := g[k][i] * scale
			m[i] = opt.Beta1*m[i] + (1-opt.Beta1)*gi
			v[i] = opt.Beta2*v[i] + (1-opt.Beta2)*gi*gi
			u := (m[i] / bc1) / (math.Sqrt(v[i]/bc2) + opt.Epsilon)
			if decay(k) {
				u += opt.WeightDecay * w[i]
			}
			w[i] -= lr * u
		}
	}
	return norm
}
