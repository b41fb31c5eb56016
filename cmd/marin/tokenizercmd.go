package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/marin-go/marin/backends/model/weights"
	"github.com/marin-go/marin/backends/tokens/tokenizer"
)

// newTokenizerCmd is `marin tokenizer encode|decode|info`: the pure-Go
// Hugging Face tokenizer on JSON lines.
func newTokenizerCmd(stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tokenizer",
		Short: "Encode and decode JSON lines with a Hugging Face tokenizer.json",
		Long: `Encode and decode with a Hugging Face tokenizer.json (ids identical to Hugging Face tokenizers).

TOKENIZER is a tokenizer.json path or a hub model id (owner/name, optionally
owner/name@revision), whose tokenizer.json is fetched from the hub (HF_ENDPOINT,
HF_TOKEN) at that revision (default main) into the user cache directory.`,
	}
	var (
		tokPath     string
		noSpecial   bool
		specialText bool
		skipSpecial bool
		batch       int
	)
	encode := &cobra.Command{
		Use:   "encode --tokenizer TOKENIZER [--no-special]",
		Short: `Read {"text": ...} lines on stdin, write {"ids": [...]} lines`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tk, err := openTokenizer(cmd.Context(), tokPath, stderr)
			if err != nil {
				return withCode(exitFailed, err)
			}
			opts := tokenizer.EncodeOptions{AddSpecialTokens: !noSpecial, SplitSpecial: !specialText}
			return withCode(exitFailed, encodeLines(cmd.InOrStdin(), stdout, tk, opts, batch))
		},
	}
	encode.Flags().StringVar(&tokPath, "tokenizer", "", "tokenizer.json path or hub model id (required)")
	encode.Flags().BoolVar(&noSpecial, "no-special", false, "do not add the post-processor's special tokens (BOS/EOS)")
	encode.Flags().BoolVar(&specialText, "special-as-text", false, "treat special tokens written in the text as plain text")
	encode.Flags().IntVar(&batch, "batch", 1024, "lines encoded together across all cores")
	_ = encode.MarkFlagRequired("tokenizer")

	decode := &cobra.Command{
		Use:   "decode --tokenizer TOKENIZER [--skip-special]",
		Short: `Read {"ids": [...]} lines on stdin, write {"text": ...} lines`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tk, err := openTokenizer(cmd.Context(), tokPath, stderr)
			if err != nil {
				return withCode(exitFailed, err)
			}
			return withCode(exitFailed, decodeLines(cmd.InOrStdin(), stdout, tk, skipSpecial))
		},
	}
	decode.Flags().StringVar(&tokPath, "tokenizer", "", "tokenizer.json path or hub model id (required)")
	decode.Flags().BoolVar(&skipSpecial, "skip-special", false, "drop special tokens from the text")
	_ = decode.MarkFlagRequired("tokenizer")

	info := &cobra.Command{
		Use:   "info TOKENIZER",
		Short: "Print a tokenizer's pipeline and vocabulary size",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tk, err := openTokenizer(cmd.Context(), args[0], stderr)
			if err != nil {
				return withCode(exitFailed, err)
			}
			_, err = io.WriteString(stdout, tk.Describe())
			return err
		},
	}
	cmd.AddCommand(encode, decode, info)
	return cmd
}

// openTokenizer loads a tokenizer.json path, or fetches one from the hub
// (into the shared hub cache) when the argument is not a file and looks
// like owner/name[@rev].
func openTokenizer(ctx context.Context, arg string, stderr io.Writer) (*tokenizer.Tokenizer, error) {
	if arg == "" {
		return nil, errors.New("no tokenizer given")
	}
	if _, err := os.Stat(arg); err == nil {
		return tokenizer.FromFile(arg)
	}
	if !weights.IsHubID(arg) {
		return nil, fmt.Errorf("tokenizer %s: no such file, and not a hub model id (owner/name)", arg)
	}
	dir, err := weights.ResolveTokenizer(ctx, arg, func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) })
	if err != nil {
		return nil, err
	}
	return tokenizer.FromFile(filepath.Join(dir, "tokenizer.json"))
}

func newLineScanner(r io.Reader) *bufio.Scanner {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	return sc
}

// encodeLines reads {"text": ...} lines and writes {"ids": [...]} lines in
// order, encoding batch lines at a time on all cores.
func encodeLines(r io.Reader, w io.Writer, tk *tokenizer.Tokenizer, o tokenizer.EncodeOptions, batch int) error {
	batch = max(batch, 1)
	sc := newLineScanner(r)
	bw := bufio.NewWriterSize(w, 1<<20)
	texts := make([]string, 0, batch)
	lineNo := 0
	var buf []byte
	flush := func() error {
		for _, ids := range tk.EncodeBatch(texts, o) {
			buf = append(buf[:0], `{"ids":[`...)
			for i, id := range ids {
				if i > 0 {
					buf = append(buf, ',')
				}
				buf = fmt.Appendf(buf, "%d", id)
			}
			buf = append(buf, "]}\n"...)
			if _, err := bw.Write(buf); err != nil {
				return fmt.Errorf("write: %w", err)
			}
		}
		texts = texts[:0]
		return nil
	}
	for sc.Scan() {
		lineNo++
		var in struct {
			Text *string `json:"text"`
		}
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			return fmt.Errorf("stdin line %d: %w", lineNo, err)
		}
		if in.Text == nil {
			return fmt.Errorf("stdin line %d: no \"text\" field", lineNo)
		}
		texts = append(texts, *in.Text)
		if len(texts) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	if err := flush(); err != nil {
		return err
	}
	return bw.Flush()
}

// decodeLines reads {"ids": [...]} lines and writes {"text": ...} lines.
func decodeLines(r io.Reader, w io.Writer, tk *tokenizer.Tokenizer, skipSpecial bool) error {
	sc := newLineScanner(r)
	bw := bufio.NewWriterSize(w, 1<<20)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		var in struct {
			IDs *[]uint32 `json:"ids"`
		}
		if err := json.Unmarshal(sc.Bytes(), &in); err != nil {
			return fmt.Errorf("stdin line %d: %w", lineNo, err)
		}
		if in.IDs == nil {
			return fmt.Errorf("stdin line %d: no \"ids\" field", lineNo)
		}
		if err := enc.Encode(struct {
			Text string `json:"text"`
		}{tk.Decode(*in.IDs, skipSpecial)}); err != nil {
			return fmt.Errorf("write: %w", err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read stdin: %w", err)
	}
	return bw.Flush()
}
