package tokenize

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/marin-go/marin/backends/tokens/chat"
	"github.com/marin-go/marin/backends/tokens/tokencache"
)

// Batching: a batch is up to batchRows lines or batchBytes of JSON, so a
// format plugin's RenderChat call stays far below sdk.MaxMessageBytes.
const (
	batchRows  = 128
	batchBytes = 4 << 20
	// examplesPerReason bounds the skipped conversations a shard keeps.
	examplesPerReason = 3
)

// shardRun holds what every shard of a job shares.
type shardRun struct {
	job           *Job
	format        chat.Format
	enc           *chat.Encoder
	fingerprint   string
	messagesField string
}

// batch is a run of lines of one input shard.
type batch struct {
	seq       int
	lines     [][]byte
	lineNos   []int
	results   []docResult
	readBytes int64 // compressed bytes read when the batch was cut
}

// docResult is one conversation, tokenized or skipped.
type docResult struct {
	id     string
	ids    []uint32
	mask   []uint8
	skip   string
	detail string
}

// shard tokenizes one input shard into cache shard name.
func (s *shardRun) shard(ctx context.Context, name string, in inputShard, prog *progress) (tokencache.ShardInfo, error) {
	w, err := tokencache.NewShardWriter(s.job.Out, name)
	if err != nil {
		return tokencache.ShardInfo{}, err
	}
	committed := false
	defer func() {
		if !committed {
			w.Abort()
		}
	}()

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	workers := s.job.Workers
	// inflight bounds the batches read but not yet written, so a slow batch
	// cannot make the others pile up in memory.
	inflight := make(chan struct{}, 3*workers)
	batches := make(chan *batch, workers)
	done := make(chan *batch, workers)

	go func() {
		defer close(batches)
		if err := s.read(ctx, in, inflight, batches); err != nil {
			cancel(err)
		}
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range batches {
				if ctx.Err() != nil {
					continue
				}
				if err := s.work(ctx, in, b); err != nil {
					cancel(err)
					continue
				}
				select {
				case done <- b:
				case <-ctx.Done():
				}
			}
		}()
	}
	go func() {
		wg.Wait()
		close(done)
	}()

	var (
		conversations int64
		skipped       = map[string]int64{}
		examples      []tokencache.SkipExample
		perReason     = map[string]int{}
		pending       = map[int]*batch{}
		next          = 0
	)
	write := func(b *batch) error {
		for _, r := range b.results {
			conversations++
			if r.skip != "" {
				skipped[r.skip]++
				if perReason[r.skip] < examplesPerReason {
					perReason[r.skip]++
					examples = append(examples, tokencache.SkipExample{Reason: r.skip, Doc: r.id, Source: in.Rel, Detail: truncate(r.detail, 300)})
				}
				continue
			}
			if err := w.Append(r.ids, r.mask); err != nil {
				return err
			}
			prog.tokens(int64(len(r.ids)))
		}
		prog.read(in, b.readBytes)
		return nil
	}
	for b := range done {
		pending[b.seq] = b
		for {
			nb, ok := pending[next]
			if !ok {
				break
			}
			delete(pending, next)
			next++
			if ctx.Err() == nil {
				if err := write(nb); err != nil {
					cancel(err)
				}
			}
			nb.lines, nb.results = nil, nil
			<-inflight
		}
	}
	if ctx.Err() != nil {
		return tokencache.ShardInfo{}, context.Cause(ctx)
	}
	info, err := w.Commit(tokencache.ShardInfo{
		Source: in.Rel, SourceBytes: in.Size, Fingerprint: s.fingerprint, SkipExamples: examples,
		Counts: tokencache.Counts{Conversations: conversations, Skipped: skipped},
	})
	if err != nil {
		return tokencache.ShardInfo{}, err
	}
	committed = true
	return info, nil
}

// read splits the input into batches of lines.
func (s *shardRun) read(ctx context.Context, in inputShard, inflight chan struct{}, out chan<- *batch) error {
	var consumed atomic.Int64 // compressed bytes read, for progress
	rc, err := openInput(ctx, in, &consumed)
	if err != nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(rc, 1<<20)
	seq, lineNo := 0, 0
	cur := &batch{seq: 0}
	size := 0
	send := func() bool {
		cur.readBytes = consumed.Load()
		select {
		case inflight <- struct{}{}:
		case <-ctx.Done():
			return false
		}
		select {
		case out <- cur:
		case <-ctx.Done():
			return false
		}
		seq++
		cur = &batch{seq: seq}
		size = 0
		return true
	}
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			lineNo++
			if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
				cur.lines = append(cur.lines, trimmed)
				cur.lineNos = append(cur.lineNos, lineNo)
				size += len(trimmed)
				if len(cur.lines) >= batchRows || size >= batchBytes {
					if !send() {
						return nil
					}
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: line %d: %w", in.URL, lineNo+1, err)
		}
	}
	if len(cur.lines) > 0 {
		send()
	}
	return nil
}

// work parses, renders and tokenizes one batch.
func (s *shardRun) work(ctx context.Context, in inputShard, b *batch) error {
	field := s.messagesField
	b.results = make([]docResult, len(b.lines))
	var convs []chat.Conversation
	var where []int // index in b.results of each conversation
	for i, line := range b.lines {
		r, err := parseRow(line, field)
		if err != nil {
			return fmt.Errorf("read %s: line %d: %w", in.URL, b.lineNos[i], err)
		}
		if r.conv.ID == "" {
			r.conv.ID = fmt.Sprintf("%s:%d", in.Rel, b.lineNos[i])
		}
		b.results[i].id = r.conv.ID
		if r.skip != "" {
			b.results[i].skip, b.results[i].detail = r.skip, r.skipDetail
			continue
		}
		convs = append(convs, r.conv)
		where = append(where, i)
	}
	if len(convs) == 0 {
		return nil
	}
	rendered, err := s.format.Render(ctx, convs)
	if err != nil {
		return fmt.Errorf("render %s lines %d–%d: %w", in.URL, b.lineNos[0], b.lineNos[len(b.lineNos)-1], err)
	}
	if len(rendered) != len(convs) {
		return fmt.Errorf("format %s returned %d conversations for %d", s.format.Name(), len(rendered), len(convs))
	}
	for k, r := range rendered {
		res := &b.results[where[k]]
		if r.Skip != "" {
			res.skip, res.detail = r.Skip, r.SkipDetail
			continue
		}
		ids, mask, err := s.enc.Encode(r.Segments)
		if err != nil {
			return fmt.Errorf("tokenize %s line %d (document %s) rendered by %s: %w", in.URL, b.lineNos[where[k]], res.id, s.format.Name(), err)
		}
		trainable := false
		for _, m := range mask {
			if m != 0 {
				trainable = true
				break
			}
		}
		if !trainable {
			res.skip, res.detail = chat.SkipNoTrainable, "the rendered conversation has no trainable token (no assistant turn, or empty ones)"
			continue
		}
		res.ids, res.mask = ids, mask
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 { // do not cut a UTF-8 sequence
		n--
	}
	return s[:n] + "…"
}
