package starlib

import (
	"strings"
	"testing"
)

// base is a two-dataset mixture experiment whose knobs the tests turn.
const base = `
tulu = default_tokenize(name = "tulu", dataset = get_instruction_dataset("allenai/tulu-3-sft-mixture"),
    tokenizer = llama3_instruct_tokenizer, format = {{FORMAT}})
orca = default_tokenize(name = "orca", dataset = get_instruction_dataset("Open-Orca/OpenOrca"),
    tokenizer = llama3_instruct_tokenizer, format = llama3_instruct_chat_format)
mix = lm_mixture_data_config(components = {"tulu": tulu, "orca": orca},
    weights = {"tulu": {{TULU_W}}, "orca": 0.5}, max_seq_len = 4096)
cfg = SimpleSFTConfig(data_config = mix, model_name_or_path = "meta-llama/Llama-3.1-8B",
    learning_rate = {{LR}}, steps_per_checkpoint = {{CKPT}}, resources = JaxDistributedConfig(backend = "{{BACKEND}}"))
sft = default_sft(name = "mix", sft_config = cfg)
extra = ExecutorStep(name = "report", op = "report/make", config = {
    "model": output_path_of(sft, "hf"), "title": {{TITLE}}, "note": unversioned({{NOTE}}),
})
executor_main(tulu, orca, sft, extra)
`

var defaults = map[string]string{
	"FORMAT": "llama3_instruct_chat_format", "TULU_W": "0.5", "LR": "2e-5", "CKPT": "1000",
	"BACKEND": "cpu", "TITLE": `"a"`, "NOTE": `"first"`,
}

func render(over map[string]string) string {
	s := base
	for k, v := range defaults {
		if o, ok := over[k]; ok {
			v = o
		}
		s = strings.ReplaceAll(s, "{{"+k+"}}", v)
	}
	return s
}

func TestVersionedChangesMovePathsAndDependents(t *testing.T) {
	f := newFixture(t)
	ref := paths(f.plan("ref.star", render(nil)))
	cases := []struct {
		knob, value string
		changed     []string // step names whose paths must change; all others must not
	}{
		{"LR", "3e-5", []string{"checkpoints/mix", "report"}},
		{"TULU_W", "0.7", []string{"checkpoints/mix", "report"}},
		{"FORMAT", `ChatFormat(name = "chatml")`, []string{"tokenized/tulu", "checkpoints/mix", "report"}},
		{"FORMAT", `llama3_instruct_chat_format.replace(train_end_of_turn = False)`, []string{"tokenized/tulu", "checkpoints/mix", "report"}},
		{"TITLE", `"b"`, []string{"report"}},
		// Non-semantic and unversioned values change nothing.
		{"CKPT", "500", nil},
		{"BACKEND", "gomlx", nil},
		{"NOTE", `"second"`, nil},
		// Equal proportions are the same experiment.
		{"TULU_W", "0.50", nil},
	}
	for _, c := range cases {
		got := paths(f.plan("case.star", render(map[string]string{c.knob: c.value})))
		if len(got) != len(ref) {
			t.Fatalf("%s=%s: %d steps, want %d", c.knob, c.value, len(got), len(ref))
		}
		for name, p := range ref {
			want := contains(c.changed, name)
			if moved := got[name] != p; moved != want {
				t.Errorf("%s=%s: step %s moved=%v (%s -> %s), want moved=%v", c.knob, c.value, name, moved, p, got[name], want)
			}
		}
	}
}

func TestPathsIndependentOfPrefix(t *testing.T) {
	f := newFixture(t)
	res := f.exec("a.star", render(nil))
	a := planWith(t, "file:///one/place", res)
	b := planWith(t, "gs://bucket/elsewhere", res)
	for i := range a.Steps {
		if a.Steps[i].RelPath != b.Steps[i].RelPath {
			t.Errorf("step %s: %s vs %s", a.Steps[i].Step.Name, a.Steps[i].RelPath, b.Steps[i].RelPath)
		}
	}
	if !strings.HasPrefix(b.Steps[0].OutputPath, "gs://bucket/elsewhere/") {
		t.Errorf("output path %s not under prefix", b.Steps[0].OutputPath)
	}
}

func TestIdenticalStepsMerge(t *testing.T) {
	f := newFixture(t)
	p := f.plan("m.star", `
a = get_instruction_dataset("allenai/tulu-3-sft-mixture")
b = get_instruction_dataset("allenai/tulu-3-sft-mixture")
ta = default_tokenize(name = "t", dataset = a, tokenizer = "x/y", format = llama3_instruct_chat_format)
tb = default_tokenize(name = "t", dataset = b, tokenizer = "x/y", format = llama3_instruct_chat_format)
executor_main(ta, tb)
`)
	if len(p.Steps) != 3 {
		t.Fatalf("got %d steps, want 3 (download, transform, tokenize merged)", len(p.Steps))
	}
}
