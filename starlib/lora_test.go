package starlib

import (
	"reflect"
	"strings"
	"testing"

	"github.com/marin-go/marin/host/graph"
)

const loraScript = `
tulu = default_tokenize(name = "tulu", dataset = get_instruction_dataset("allenai/tulu-3-sft-mixture"),
    tokenizer = llama3_instruct_tokenizer, format = llama3_instruct_chat_format)
cfg = SimpleSFTConfig(data_config = tulu, model_name_or_path = "meta-llama/Llama-3.1-8B",
    learning_rate = 2e-4{{LORA}})
sft = default_sft(name = "lora", sft_config = cfg)
executor_main(sft)
`

func loraStep(t *testing.T, f *fixture, lora string) *graph.Planned {
	t.Helper()
	p := f.plan("lora.star", strings.Replace(loraScript, "{{LORA}}", lora, 1))
	for _, s := range p.Steps {
		if s.Step.Name == "checkpoints/lora" {
			return s
		}
	}
	t.Fatal("no checkpoints/lora step")
	return nil
}

func TestLoraConfig(t *testing.T) {
	f := newFixture(t)
	full := loraStep(t, f, "")
	if _, ok := full.Step.Config["lora"]; ok {
		t.Error("a full fine-tune's config holds a lora key (it would move every existing step)")
	}
	def := loraStep(t, f, ", lora = LoraConfig()")
	want := map[string]any{"r": int64(8), "alpha": 8.0, "dropout": 0.0, "target_modules": nil, "bias": "none",
		"modules_to_save": nil, "use_rslora": false, "merge_lora": false}
	if got := def.Step.Config["lora"]; !reflect.DeepEqual(got, want) {
		t.Errorf("LoraConfig() is %v, want PEFT's defaults %v", got, want)
	}
	if def.RelPath == full.RelPath {
		t.Error("LoRA and full fine-tuning share an output path")
	}
	// Every field counts in the version.
	seen := map[string]string{def.RelPath: "LoraConfig()"}
	for _, l := range []string{
		`LoraConfig(r = 16)`, `LoraConfig(alpha = 16)`, `LoraConfig(dropout = 0.05)`,
		`LoraConfig(target_modules = "all-linear")`, `LoraConfig(target_modules = ["q_proj", "k_proj", "v_proj"])`,
		`LoraConfig(bias = "lora_only")`, `LoraConfig(modules_to_save = ["embed_tokens"])`,
		`LoraConfig(use_rslora = True)`, `LoraConfig(merge_lora = True)`,
	} {
		p := loraStep(t, f, ", lora = "+l).RelPath
		if prev, ok := seen[p]; ok {
			t.Errorf("%s has the path of %s", l, prev)
		}
		seen[p] = l
	}
	// PEFT's names are the same fields.
	a := loraStep(t, f, ", lora = LoraConfig(lora_alpha = 16, lora_dropout = 0.1)")
	b := loraStep(t, f, ", lora = LoraConfig(alpha = 16, dropout = 0.1)")
	if a.RelPath != b.RelPath {
		t.Error("lora_alpha/lora_dropout and alpha/dropout differ")
	}
	if src := a.Step.Sources["lora.alpha"]; !strings.Contains(src.Pos, "lora.star:5:") || src.Attr != "LoraConfig.alpha" {
		t.Errorf("lora.alpha's source %+v", src)
	}
	for frag, l := range map[string]string{
		"alpha given twice":                  `LoraConfig(alpha = 16, lora_alpha = 16)`,
		"lora must be LoraConfig(...)":       `{"r": 8}`,
		"r must be an int":                   `LoraConfig(r = 8.5)`,
		`unexpected keyword argument "rank"`: `LoraConfig(rank = 8)`,
	} {
		msg := f.execErr("bad.star", strings.Replace(loraScript, "{{LORA}}", ", lora = "+l, 1))
		mustContain(t, msg, frag)
	}
}
