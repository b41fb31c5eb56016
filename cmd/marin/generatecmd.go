package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/backends/cpu/generate"
	"github.com/marin-go/marin/backends/model/sample"
	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
	"github.com/marin-go/marin/plugins/storage"
)

// sampleFlags are the flags generate and chat share.
type sampleFlags struct {
	model, tokenizer, format, system string
	maxNew                           int
	temperature, topP                float64
	topK                             int
	seed                             uint64
}

func (f *sampleFlags) bind(cmd *cobra.Command, maxNew int) {
	fl := cmd.Flags()
	fl.StringVar(&f.model, "model", "", "the model: an hf/ export or checkpoint directory, a LoRA adapter directory (PEFT's layout: its base is loaded and the adapter merged), a training step's output (its latest export), or a hub id; a directory may be a gs:// or s3:// URL")
	fl.StringVar(&f.tokenizer, "tokenizer", "", "tokenizer directory or hub id, when the model directory has none")
	fl.StringVar(&f.system, "system", "", "system prompt")
	fl.IntVar(&f.maxNew, "max-new-tokens", maxNew, "most tokens to generate")
	fl.Float64Var(&f.temperature, "temperature", 0, "0 is greedy decoding; above 0 samples")
	fl.Float64Var(&f.topP, "top-p", 1, "nucleus sampling: keep the most likely tokens up to this probability")
	fl.IntVar(&f.topK, "top-k", 0, "keep the K most likely tokens (0: all)")
	fl.Uint64Var(&f.seed, "seed", 0, "sampling seed")
	_ = cmd.MarkFlagRequired("model")
}

func (f *sampleFlags) sampling() sample.Sampling {
	return sample.Sampling{Temperature: f.temperature, TopP: f.topP, TopK: f.topK, Seed: f.seed}
}

func (f *sampleFlags) load(ctx context.Context, stderr io.Writer) (*sample.Model, error) {
	if err := f.sampling().Validate(); err != nil {
		return nil, withCode(exitUsage, err)
	}
	if f.maxNew <= 0 {
		return nil, withCode(exitUsage, fmt.Errorf("--max-new-tokens must be positive"))
	}
	// A bucket URL's query (endpoint, region, …) configures its bucket.
	model, err := storage.UseOptions(f.model)
	if err != nil {
		return nil, withCode(exitUsage, fmt.Errorf("--model: %w", err))
	}
	tok, err := storage.UseOptions(f.tokenizer)
	if err != nil {
		return nil, withCode(exitUsage, fmt.Errorf("--tokenizer: %w", err))
	}
	m, err := sample.Load(ctx, model, tok, func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) })
	if err != nil {
		return nil, withCode(exitFailed, err)
	}
	return m, nil
}

// streamer prints generated text as it becomes valid UTF-8.
type streamer struct {
	m       *sample.Model
	w       io.Writer
	toks    []uint32
	printed string
}

func (s *streamer) token(_ int, id uint32) {
	s.toks = append(s.toks, id)
	text := s.m.Decode(s.toks)
	if !utf8.ValidString(text) || !strings.HasPrefix(text, s.printed) {
		return
	}
	fmt.Fprint(s.w, text[len(s.printed):])
	s.printed = text
}

func (s *streamer) finish() {
	if text := s.m.Decode(s.toks); strings.HasPrefix(text, s.printed) {
		fmt.Fprint(s.w, text[len(s.printed):])
	}
}

func newGenerateCmd(stdout, stderr io.Writer) *cobra.Command {
	var f sampleFlags
	var prompt string
	var useChat, asJSON bool
	cmd := &cobra.Command{
		Use:   "generate --model DIR --prompt TEXT",
		Short: "Continue a prompt with a model (greedy or sampled), on the CPU",
		Long: `Continue a prompt with a model on the CPU, with a key/value cache.

Without --format the prompt is raw text (the tokenizer's BOS is added) and
generation stops at the tokenizer's end-of-sequence token. With --format NAME
(llama3_instruct, chatml, llama2, mistral, alpaca, hf_template) or --chat (the
format the model was trained with, from its marin.json) the prompt is one user
turn rendered with the format, and generation stops at the format's end of turn.
--model may be a LoRA adapter directory (PEFT's layout): its base model is
loaded and the adapter merged. --json prints one JSON object (the prompt's and
the generated token ids, the stop ids, the text) instead of streaming the text.

  marin generate --model marin-output/checkpoints/quickstart_sft-1a2b3c --chat --prompt "23+58"
  marin generate --model org/name --prompt "Once upon a time" --temperature 0.8 --top-p 0.95`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if prompt == "" {
				return withCode(exitUsage, fmt.Errorf("--prompt is empty"))
			}
			ctx := cmd.Context()
			m, err := f.load(ctx, stderr)
			if err != nil {
				return err
			}
			var ids, stop []uint32
			if f.format != "" || useChat {
				o, err := m.ChatOptions(f.format)
				if err != nil {
					return withCode(exitUsage, err)
				}
				p, err := chat.NewPrompter(o, m.Vocab)
				if err != nil {
					return withCode(exitFailed, err)
				}
				msgs := []chat.Message{{Role: "user", Content: prompt}}
				if f.system != "" {
					msgs = append([]chat.Message{{Role: "system", Content: f.system}}, msgs...)
				}
				if ids, err = p.Encode(msgs); err != nil {
					return withCode(exitFailed, err)
				}
				stop = p.Stop()
			} else {
				ids = m.Tok.Encode(prompt, tokenizer.EncodeOptions{AddSpecialTokens: true})
				if eos, ok := m.EOS(); ok {
					stop = []uint32{eos}
				}
			}
			dec, err := generate.NewDecoder(m.Params, 1, 0)
			if err != nil {
				return withCode(exitFailed, err)
			}
			maxNew := min(f.maxNew, dec.MaxLen()-len(ids))
			if maxNew <= 0 {
				return withCode(exitUsage, fmt.Errorf("the prompt's %d tokens fill the model's %d positions", len(ids), dec.MaxLen()))
			}
			opts := sample.Options{MaxNewTokens: maxNew, Sampling: f.sampling(), Stop: stop}
			if asJSON {
				res, err := sample.Generate(ctx, dec, [][]uint32{ids}, opts, nil)
				if err != nil {
					return withCode(exitFailed, err)
				}
				g := res[0]
				out := generation{PromptIDs: ids, IDs: g.Tokens, StopIDs: stop, Stopped: g.Stopped, Text: m.Decode(g.Tokens)}
				if g.Stopped {
					out.StopID = &g.StopID
				}
				if out.IDs == nil {
					out.IDs = []uint32{}
				}
				return json.NewEncoder(stdout).Encode(out)
			}
			st := &streamer{m: m, w: stdout}
			if _, err := sample.Generate(ctx, dec, [][]uint32{ids}, opts, st.token); err != nil {
				return withCode(exitFailed, err)
			}
			st.finish()
			fmt.Fprintln(stdout)
			return nil
		},
	}
	f.bind(cmd, 256)
	cmd.Flags().StringVar(&prompt, "prompt", "", "the prompt")
	cmd.Flags().StringVar(&f.format, "format", "", "render the prompt as a user turn with this chat format")
	cmd.Flags().BoolVar(&useChat, "chat", false, "render the prompt with the chat format the model was trained with")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON object (prompt_ids, ids, stop_ids, stopped, stop_id, text) instead of streaming the text")
	return cmd
}

// generation is generate --json's output: the prompt's token ids, the
// generated ones (without the stop token), the ids generation stops at,
// and whether (and at which) it stopped.
type generation struct {
	PromptIDs []uint32 `json:"prompt_ids"`
	IDs       []uint32 `json:"ids"`
	StopIDs   []uint32 `json:"stop_ids"`
	Stopped   bool     `json:"stopped"`
	StopID    *uint32  `json:"stop_id,omitempty"`
	Text      string   `json:"text"`
}

func newChatCmd(stdout, stderr io.Writer) *cobra.Command {
	var f sampleFlags
	cmd := &cobra.Command{
		Use:   "chat --model DIR",
		Short: "Talk with a model: user turns from stdin, replies streamed to stdout",
		Long: `Talk with a model on the CPU. Each line read from stdin is a user turn; the
reply is rendered with the chat format the model was trained with (its
marin.json), or --format NAME, and ends at the format's end of turn. The
conversation is kept (the key/value cache is reused across turns).
"/reset" starts over, "/exit" or end of input quits.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			m, err := f.load(ctx, stderr)
			if err != nil {
				return err
			}
			o, err := m.ChatOptions(f.format)
			if err != nil {
				return withCode(exitUsage, err)
			}
			p, err := chat.NewPrompter(o, m.Vocab)
			if err != nil {
				return withCode(exitFailed, err)
			}
			dec, err := generate.NewDecoder(m.Params, 1, 0)
			if err != nil {
				return withCode(exitFailed, err)
			}
			fmt.Fprintf(stderr, "chatting with %s (format %s); /reset starts over, /exit quits\n", m.Dir, p.Name())
			var msgs []chat.Message
			if f.system != "" {
				msgs = append(msgs, chat.Message{Role: "system", Content: f.system})
			}
			base := len(msgs)
			var fed []uint32 // the tokens the decoder's cache holds
			in := bufio.NewScanner(cmd.InOrStdin())
			in.Buffer(make([]byte, 1<<16), 1<<24)
			turn := uint64(0)
			for {
				fmt.Fprint(stdout, "user> ")
				if !in.Scan() {
					fmt.Fprintln(stdout)
					return in.Err()
				}
				line := strings.TrimSpace(in.Text())
				switch line {
				case "":
					continue
				case "/exit", "/quit":
					return nil
				case "/reset":
					msgs, fed = msgs[:base], nil
					dec.Reset()
					continue
				}
				msgs = append(msgs, chat.Message{Role: "user", Content: line})
				ids, err := p.Encode(msgs)
				if err != nil {
					return withCode(exitFailed, err)
				}
				// Keep the cached prefix the new rendering shares.
				common := 0
				for common < len(fed) && common < len(ids)-1 && fed[common] == ids[common] {
					common++
				}
				dec.Truncate(0, common)
				maxNew := min(f.maxNew, dec.MaxLen()-len(ids))
				if maxNew <= 0 {
					fmt.Fprintln(stderr, "the conversation fills the model's context; /reset to start over")
					msgs = msgs[:len(msgs)-1]
					continue
				}
				fmt.Fprint(stdout, "assistant> ")
				st := &streamer{m: m, w: stdout}
				s := f.sampling()
				s.Seed += turn
				turn++
				out, err := sample.Generate(ctx, dec, [][]uint32{ids[common:]}, sample.Options{MaxNewTokens: maxNew, Sampling: s, Stop: p.Stop()}, st.token)
				if err != nil {
					return withCode(exitFailed, err)
				}
				res := out[0]
				st.finish()
				fmt.Fprintln(stdout)
				all := append(append([]uint32(nil), ids...), res.Tokens...)
				if res.Stopped {
					all = append(all, res.StopID)
				}
				fed = all[:min(len(all), dec.Len(0))]
				msgs = append(msgs, chat.Message{Role: "assistant", Content: m.Decode(res.Tokens)})
			}
		},
	}
	f.bind(cmd, 512)
	cmd.Flags().StringVar(&f.format, "format", "", "chat format (default: the one the model was trained with)")
	return cmd
}
