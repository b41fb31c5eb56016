package starlib

import (
	"errors"
	"strings"
	"testing"
)

func TestStarlarkErrorsCarryPosition(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, src string
		wants     []string
	}{
		{"syntax.star", "x = (\n", []string{"syntax.star:2:1:"}},
		{"undefined.star", "x = 1\ny = nope\n", []string{"undefined.star:2:5:", "undefined: nope"}},
		{"badkw.star", "\ncfg = SimpleSFTConfig(learning_rat = 1e-5)\n", []string{"badkw.star:2:22:", `unexpected keyword argument "learning_rat"`, `did you mean "learning_rate"`}},
		{"badtype.star", "cfg = SimpleSFTConfig(train_batch_size = \"8\")\n", []string{"badtype.star:1:22:", "train_batch_size must be an int"}},
		{"unknown.star", "d = get_instruction_dataset(\"allenai/tulu-3-sft-mixtur\")\n",
			[]string{"unknown.star:1:28:", `unknown dataset "allenai/tulu-3-sft-mixtur"`, "close matches: allenai/tulu-3-sft-mixture"}},
		{"weights.star", `
t = default_tokenize(name = "t", dataset = get_instruction_dataset("allenai/tulu-3-sft-mixture"), tokenizer = "a/b", format = llama3_instruct_chat_format)
m = lm_mixture_data_config(components = {"tulu": t}, weights = {"tlu": 1})
`, []string{"weights.star:3:27:", `weight for "tlu", which is not a component`, `did you mean "tulu"`}},
		{"nomain.star", "x = 1\n", []string{"never calls executor_main"}},
		{"twice.star", `
s = ExecutorStep(name = "a", op = "x")
executor_main(s)
executor_main(s)
`, []string{"twice.star:4:14:", "called more than once (first at", "twice.star:3:14"}},
		{"notastep.star", "executor_main(1)\n", []string{"notastep.star:1:14:", "argument 1 is a int, not a step"}},
		{"noop.star", "s = ExecutorStep(name = \"a\")\n", []string{"noop.star:1:17:", "missing op"}},
		{"badname.star", "s = ExecutorStep(name = \"../a\", op = \"x\")\n", []string{"badname.star:1:17:", "must not contain . or .. segments"}},
		{"inner.star", "def f():\n    return SimpleSFTConfig(seed = \"x\")\nf()\n", []string{"inner.star:2:27:", "seed must be an int"}},
	}
	// Values out of range, a max_seq_len that differs from the data's, no
	// model… are the ops' schemas' business, reported at plan time: see
	// cmd/marin's TestPlanTimeDiagnostics.
	for _, c := range cases {
		msg := f.execErr(c.name, c.src)
		mustContain(t, msg, c.wants...)
	}
}

func TestBacktraceNamesCallers(t *testing.T) {
	f := newFixture(t)
	_, err := ExecFile(f.file("bt.star", "def f():\n    return SimpleSFTConfig(seed = \"x\")\nf()\n"), nil)
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("error %T is not a script error", err)
	}
	mustContain(t, se.Backtrace, "bt.star:3:2: in <toplevel>", "bt.star:2:27: in f")
}

func TestLoadRelativeAndStd(t *testing.T) {
	f := newFixture(t)
	f.file("lib/common.star", `
load("../consts.star", "LR")
def tok(name):
    return default_tokenize(name = name, dataset = get_instruction_dataset("allenai/tulu-3-sft-mixture"),
                            tokenizer = llama3_instruct_tokenizer, format = llama3_instruct_chat_format)
lr = LR
`)
	f.file("consts.star", "LR = 3e-5\n")
	p := f.plan("main.star", `
load("lib/common.star", "tok", "lr")
load("@marin//sft.star", "create_tokenization_step", "num_train_steps_for")
a = tok("a")
b = create_tokenization_step("allenai/tulu-3-sft-mixture")
if num_train_steps_for(670426314, 128, 4096, 3) != 3834:
    fail("exp606's step count")
if lr != 3e-5:
    fail("lr from a nested relative load")
executor_main(a, b)
`)
	if len(p.Steps) != 4 {
		t.Errorf("got %d steps, want 4", len(p.Steps))
	}
	msg := f.execErr("bad.star", `load("@marin//nope.star", "x")`)
	mustContain(t, msg, `no standard module "@marin//nope.star"`, "@marin//sft.star")
	msg = f.execErr("missing.star", `load("nothere.star", "x")`)
	mustContain(t, msg, "missing.star:1:1", "no such file")
	f.file("c1.star", `load("c2.star", "y")
x = 1`)
	f.file("c2.star", `load("c1.star", "x")
y = 1`)
	msg = f.execErr("cyc.star", `load("c1.star", "x")`)
	mustContain(t, msg, "load cycle")
}

func TestValidationErrorsFoundAtPlanTimePointAtScript(t *testing.T) {
	f := newFixture(t)
	res := f.exec("dup.star", `
a = ExecutorStep(name = "a", op = "x", override_output_path = "same")
b = ExecutorStep(name = "b", op = "y", override_output_path = "same")
executor_main(a, b)
`)
	_, err := planErr(res)
	if err == nil || !strings.Contains(err.Error(), "dup.star:3:17") || !strings.Contains(err.Error(), "both write") {
		t.Errorf("got %v", err)
	}
}
