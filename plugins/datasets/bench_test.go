package datasets

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/parquet-go/parquet-go"
)

// words is a vocabulary for generated text that compresses like prose.
var words = strings.Fields(`the of and to in a is that for it as with was on be by this are or from at which an
have not they we their can more one all has been also other were its some would may these only into
model data training language response question answer explain function value return example because
however therefore python compute result number system user assistant between through during before`)

func sentence(r *rand.Rand, n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(words[r.IntN(len(words))])
	}
	b.WriteByte('.')
	return b.String()
}

// writeBenchParquet writes tulu-shaped rows into a parquet file of about
// size bytes and returns its row count.
func writeBenchParquet(tb testing.TB, path string, size int64) int64 {
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	w := parquet.NewGenericWriter[tuluRow](f, parquet.Compression(&parquet.Snappy))
	r := rand.New(rand.NewPCG(1, 2))
	var rows int64
	batch := make([]tuluRow, 0, 1000)
	for {
		for len(batch) < cap(batch) {
			turns := 1 + r.IntN(3)
			var msgs []msg
			for t := 0; t < turns; t++ {
				msgs = append(msgs, um(sentence(r, 10+r.IntN(60))), am(sentence(r, 40+r.IntN(250))))
			}
			batch = append(batch, tuluRow{ID: "bench_" + sentence(r, 1), Messages: msgs, Source: "bench/generated"})
		}
		if _, err := w.Write(batch); err != nil {
			tb.Fatal(err)
		}
		rows += int64(len(batch))
		batch = batch[:0]
		if err := w.Flush(); err != nil {
			tb.Fatal(err)
		}
		if st, _ := f.Stat(); st.Size() >= size {
			break
		}
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
	return rows
}

// BenchmarkTransformParquet measures dataset/transform on a generated
// 200 MB parquet file of tulu-shaped conversations:
//
//	go test ./plugins/datasets -run '^$' -bench TransformParquet -benchtime 1x
//
// MB/s is parquet input bytes per second; rows/s is reported too, and
// MB/cpu-s, input bytes per second of CPU time (user+system, all threads).
func BenchmarkTransformParquet(b *testing.B) {
	dir := b.TempDir()
	in := filepath.Join(dir, "in")
	if err := os.MkdirAll(filepath.Join(in, "data"), 0o755); err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(in, "data", "train-00000-of-00001.parquet")
	rows := writeBenchParquet(b, file, 200<<20)
	st, err := os.Stat(file)
	if err != nil {
		b.Fatal(err)
	}
	_, cfg := registrySteps(b, `get_instruction_dataset("allenai/tulu-3-sft-mixture")`)
	b.SetBytes(st.Size())
	cpu0 := cpuSeconds()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out, _, err := runTransform(b, cfg, "file://"+in)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		os.RemoveAll(out)
		b.StartTimer()
	}
	cpu := cpuSeconds() - cpu0
	b.ReportMetric(float64(rows)*float64(b.N)/b.Elapsed().Seconds(), "rows/s")
	// On a shared machine wall-clock rates vary with the load; CPU time
	// per byte does not.
	b.ReportMetric(cpu/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(st.Size())*float64(b.N)/cpu/1e6, "MB/cpu-s")
}

// cpuSeconds is the CPU time (user+system) this process has used.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}
