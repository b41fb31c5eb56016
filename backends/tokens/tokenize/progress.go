package tokenize

import (
	"fmt"
	"time"

	"github.com/marin-go/marin/plugins/sdk"
)

// progress reports tokens done, an estimate of the total (from the share of
// input bytes read) and the rate, at most twice a second.
type progress struct {
	r          sdk.Reporter
	shards     int
	totalBytes int64

	shard     int   // shards finished
	doneBytes int64 // input bytes of finished shards
	curBytes  int64 // of the current shard
	done      int64 // tokens, reused shards included
	fresh     int64 // tokens written by this run
	start     time.Time
	last      time.Time
}

func newProgress(r sdk.Reporter, inputs []inputShard) *progress {
	p := &progress{r: r, shards: len(inputs), start: time.Now()}
	for _, in := range inputs {
		p.totalBytes += in.Size
	}
	return p
}

func (p *progress) tokens(n int64) {
	p.done += n
	p.fresh += n
	if time.Since(p.last) >= 500*time.Millisecond {
		p.report()
	}
}

func (p *progress) read(_ inputShard, consumed int64) { p.curBytes = consumed }

func (p *progress) shardDone(in inputShard, tokens int64, reused bool) {
	p.shard++
	p.doneBytes += in.Size
	p.curBytes = 0
	if reused {
		p.done += tokens
	}
	p.report()
}

func (p *progress) report() {
	p.last = time.Now()
	var total float64
	if read := p.doneBytes + p.curBytes; read > 0 && p.totalBytes > 0 {
		if p.shard == p.shards {
			total = float64(p.done)
		} else {
			total = float64(p.done) * float64(p.totalBytes) / float64(read)
		}
	}
	rate := float64(p.fresh) / max(time.Since(p.start).Seconds(), 1e-9)
	p.r.Progress(float64(p.done), total, "tokens", fmt.Sprintf("shard %d/%d, %.0f tokens/s", min(p.shard+1, p.shards), p.shards, rate))
}
