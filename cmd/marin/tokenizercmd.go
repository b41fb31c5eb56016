package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

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
	encode.Flags().IntVar(&batch, "batch", 1024, "at most this many lines a worker encodes at a time (all cores work at once; output stays in input order)")
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

// The encode and decode commands run as an ordered pipeline: one goroutine
// reads stdin in blocks of whole lines, one worker per core parses, encodes
// (or decodes) and formats a block, and one goroutine writes the blocks in
// input order, so output order is input order whatever the scheduling.

// lineBlock is a run of whole input lines and, once processed, its output.
type lineBlock struct {
	data      []byte
	firstLine int // 1-based number of the block's first line
	out       []byte
	err       error
	done      chan struct{}
}

// blockSize is the input bytes a worker takes at a time.
const blockSize = 256 << 10

// runLines feeds r through process in parallel blocks and writes the
// results to w in order. process gets a block's lines (without newlines)
// and the number of the first, and appends output to out.
func runLines(r io.Reader, w io.Writer, maxLines int, process func(lines [][]byte, firstLine int, out []byte) ([]byte, error)) error {
	workers := runtime.GOMAXPROCS(0)
	work := make(chan *lineBlock, workers)
	ordered := make(chan *lineBlock, 2*workers)
	readErr := make(chan error, 1)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lines [][]byte
			for b := range work {
				lines = splitLines(b.data, lines[:0])
				b.out, b.err = process(lines, b.firstLine, b.out)
				close(b.done)
			}
		}()
	}
	go func() {
		defer close(ordered)
		defer close(work)
		readErr <- readBlocks(r, maxLines, func(b *lineBlock) bool {
			select {
			case ordered <- b:
			case <-stop:
				return false
			}
			work <- b
			return true
		})
	}()
	bw := bufio.NewWriterSize(w, 1<<20)
	var err error
	for b := range ordered {
		<-b.done
		if err != nil {
			continue
		}
		if b.err != nil {
			err = b.err
		} else if _, werr := bw.Write(b.out); werr != nil {
			err = fmt.Errorf("write: %w", werr)
		}
		if err != nil {
			close(stop)
		}
	}
	wg.Wait()
	if rerr := <-readErr; err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return err
	}
	return bw.Flush()
}

// readBlocks cuts r into blocks of whole lines (about blockSize bytes, or
// maxLines lines when positive) and hands them to emit in order.
func readBlocks(r io.Reader, maxLines int, emit func(*lineBlock) bool) error {
	br := bufio.NewReaderSize(r, blockSize)
	line := 1
	var cur []byte
	count := 0
	send := func() bool {
		if len(cur) == 0 {
			return true
		}
		b := &lineBlock{data: cur, firstLine: line, done: make(chan struct{})}
		line += count
		cur, count = nil, 0
		return emit(b)
	}
	for {
		l, err := br.ReadSlice('\n')
		if len(l) > 0 {
			if cur == nil {
				cur = make([]byte, 0, blockSize+len(l))
			}
			cur = append(cur, l...)
			if l[len(l)-1] == '\n' {
				count++
			}
			if len(cur) >= blockSize || (maxLines > 0 && count >= maxLines) {
				if !send() {
					return nil
				}
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(cur) > 0 && cur[len(cur)-1] != '\n' {
				count++
			}
			send()
			return nil
		case err != nil:
			send()
			return fmt.Errorf("read stdin: %w", err)
		}
	}
}

// splitLines appends the lines of b (a final line may lack its newline;
// a "\r\n" ending loses its "\r" too).
func splitLines(b []byte, lines [][]byte) [][]byte {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return append(lines, b)
		}
		l := b[:i]
		if n := len(l); n > 0 && l[n-1] == '\r' {
			l = l[:n-1]
		}
		lines = append(lines, l)
		b = b[i+1:]
	}
	return lines
}

// encodeLines reads {"text": ...} lines and writes {"ids": [...]} lines in
// input order, on all cores. batch caps the lines a worker takes at a time.
func encodeLines(r io.Reader, w io.Writer, tk *tokenizer.Tokenizer, o tokenizer.EncodeOptions, batch int) error {
	return runLines(r, w, batch, func(lines [][]byte, first int, out []byte) ([]byte, error) {
		out = out[:0]
		var in struct {
			Text *string `json:"text"`
		}
		for i, l := range lines {
			in.Text = nil
			if err := json.Unmarshal(l, &in); err != nil {
				return out, fmt.Errorf("stdin line %d: %w", first+i, err)
			}
			if in.Text == nil {
				return out, fmt.Errorf("stdin line %d: no \"text\" field", first+i)
			}
			out = append(out, `{"ids":[`...)
			for j, id := range tk.Encode(*in.Text, o) {
				if j > 0 {
					out = append(out, ',')
				}
				out = strconv.AppendUint(out, uint64(id), 10)
			}
			out = append(out, "]}\n"...)
		}
		return out, nil
	})
}

// decodeLines reads {"ids": [...]} lines and writes {"text": ...} lines in
// input order, on all cores.
func decodeLines(r io.Reader, w io.Writer, tk *tokenizer.Tokenizer, skipSpecial bool) error {
	return runLines(r, w, 0, func(lines [][]byte, first int, out []byte) ([]byte, error) {
		buf := bytes.NewBuffer(out[:0])
		enc := json.NewEncoder(buf)
		enc.SetEscapeHTML(false)
		var in struct {
			IDs *[]uint32 `json:"ids"`
		}
		for i, l := range lines {
			in.IDs = nil
			if err := json.Unmarshal(l, &in); err != nil {
				return buf.Bytes(), fmt.Errorf("stdin line %d: %w", first+i, err)
			}
			if in.IDs == nil {
				return buf.Bytes(), fmt.Errorf("stdin line %d: no \"ids\" field", first+i)
			}
			if err := enc.Encode(struct {
				Text string `json:"text"`
			}{tk.Decode(*in.IDs, skipSpecial)}); err != nil {
				return buf.Bytes(), err
			}
		}
		return buf.Bytes(), nil
	})
}
