package tokenize

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/plugins/hfhub"
	"github.com/marin-go/marin/plugins/sdk"
)

// The tokenizer is part of a tokenize step's version. Plan pins it while the
// host plans, before the step is hashed:
//
//   - a local tokenizer (a tokenizer.json, or a directory holding one and
//     tokenizer_config.json) pins tokenizer_digest, a sha256 over
//     tokenizer.json and the tokenizer_config.json settings the rendering
//     reads — its chat_template only when the format renders with it
//     (hf_template without its own template=) — so editing the tokenizer or
//     its template moves the step to a new path instead of reusing a stale
//     cache; Run refuses files that changed after planning;
//   - a hub tokenizer pins tokenizer_revision, the commit its revision
//     (default main) resolves to: from KnownRevisions for the presets, else
//     asked of the hub (HF_ENDPOINT, HF_TOKEN). Run fetches that commit.

// KnownRevisions pins the hub tokenizers the builtins name, so planning an
// experiment that uses them needs no network.
var KnownRevisions = map[string]string{
	// llama3_instruct_tokenizer (Marin's preset).
	"meta-llama/Meta-Llama-3.1-8B-Instruct": "0e9e39f249a16976918f6564b8830bc894c89659",
}

// resolveTimeout bounds asking the hub for a revision while planning.
const resolveTimeout = 20 * time.Second

func planStep(ctx context.Context, req *sdk.PlanRequest) (*sdk.PlanResult, error) {
	res := &sdk.PlanResult{}
	var c Config
	if err := req.Decode(&c); err != nil {
		return res, nil // the host reports the schema's issues
	}
	opts, err := chat.ParseOptions(c.Format)
	if err != nil {
		res.Errorf("format", "%v", err)
		return res, nil
	}
	if c.Tokenizer == "" || req.IsStepOutput(c.Tokenizer) {
		return res, nil // made by another step: its path is in the version
	}
	if isHubTokenizer(c.Tokenizer) {
		rev, err := pinRevision(ctx, c.Tokenizer)
		if err != nil {
			res.Errorf("tokenizer", "%v", err)
			return res, nil
		}
		res.Set = map[string]any{"tokenizer_revision": rev}
		return res, nil
	}
	tf, err := loadTokenizer(ctx, c.Tokenizer, nopReporter{})
	if err != nil {
		res.Errorf("tokenizer", "%v", err)
		return res, nil
	}
	if _, err := tokenizer.FromBytes(tf.JSON); err != nil {
		res.Errorf("tokenizer", "%s: %v", tf.JSONPath, err)
		return res, nil
	}
	digest, err := tokenizerDigest(tf, usesChatTemplate(opts))
	if err != nil {
		res.Errorf("tokenizer", "%v", err)
		return res, nil
	}
	if usesChatTemplate(opts) && !hasChatTemplate(tf.Config) {
		res.Errorf("format", "chat format hf_template: %s has no chat_template in tokenizer_config.json and the format gives no template=", tf.JSONPath)
	}
	res.Set = map[string]any{"tokenizer_digest": digest}
	return res, nil
}

// isHubTokenizer says whether a tokenizer name is a hub id rather than a
// local path (the same test loadTokenizer makes).
func isHubTokenizer(name string) bool {
	return !isLocalTokenizer(name)
}

// pinRevision resolves a hub tokenizer's revision to a commit.
func pinRevision(ctx context.Context, name string) (string, error) {
	id, rev, _ := strings.Cut(name, "@")
	if isCommit(rev) {
		return rev, nil
	}
	if pinned, ok := KnownRevisions[id]; ok && rev == "" {
		return pinned, nil
	}
	client, err := hfhub.New()
	if err != nil {
		return "", fmt.Errorf("tokenizer %q: %w", name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, resolveTimeout)
	defer cancel()
	commit, err := client.ResolveRevision(ctx, hfhub.Repo{Type: hfhub.Model, ID: id}, rev)
	if err != nil {
		return "", fmt.Errorf("tokenizer %q: cannot pin its revision (%v); name a commit as %q, or use a local tokenizer.json", name, err, id+"@COMMIT")
	}
	return commit.SHA, nil
}

func isCommit(rev string) bool {
	if len(rev) != 40 {
		return false
	}
	for _, c := range rev {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}

// usesChatTemplate says whether the format renders with the tokenizer's own
// chat_template.
func usesChatTemplate(o chat.Options) bool {
	return o.Name == chat.NameHFTemplate && o.Template == ""
}

func hasChatTemplate(config []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(config, &m) != nil {
		return false
	}
	t, ok := m["chat_template"]
	return ok && string(t) != "null" && string(t) != `""`
}

// tokenizerDigest is "sha256:" of tokenizer.json and of tokenizer_config.json
// in canonical form, without its chat_template when the format does not
// render with it.
func tokenizerDigest(tf *tokenizerFiles, withTemplate bool) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "tokenizer.json %d\n", len(tf.JSON))
	h.Write(tf.JSON)
	if tf.Config != nil {
		var m map[string]any
		if err := json.Unmarshal(tf.Config, &m); err != nil {
			return "", fmt.Errorf("tokenizer_config.json next to %s: %w", tf.JSONPath, err)
		}
		if !withTemplate {
			delete(m, "chat_template")
		}
		canon, _ := json.Marshal(m) // map keys sorted: canonical
		fmt.Fprintf(h, "\ntokenizer_config.json %d\n", len(canon))
		h.Write(canon)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), nil
}

// checkPinned refuses a local tokenizer that changed since the step was
// planned (its digest is in the step's version).
func checkPinned(c Config, tf *tokenizerFiles, opts chat.Options) error {
	if c.TokenizerDigest == "" {
		return nil
	}
	got, err := tokenizerDigest(tf, usesChatTemplate(opts))
	if err != nil {
		return err
	}
	if got != c.TokenizerDigest {
		return fmt.Errorf("tokenizer %s changed after this step was planned (digest %s, planned %s): rerun marin to plan it again", tf.JSONPath, got, c.TokenizerDigest)
	}
	return nil
}
