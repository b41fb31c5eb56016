package eval

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/dlclark/regexp2"

	"github.com/marin-go/marin/backends/eval/pyrand"
	"github.com/marin-go/marin/plugins/evaltasks"
)

// Metric values per document are float64, except the pairs that weighted
// aggregations need (ll, count) and ifeval's per-instruction lists.

// llCount is a (loglikelihood, words or bytes) pair.
type llCount struct{ LL, N float64 }

// aggregate applies a named aggregation (lm-eval's) to per-document values.
func aggregate(name string, items []any) (float64, error) {
	if len(items) == 0 {
		return math.NaN(), nil
	}
	switch name {
	case "mean":
		xs, err := floats(items)
		if err != nil {
			return 0, err
		}
		return mean(xs), nil
	case "median":
		xs, err := floats(items)
		if err != nil {
			return 0, err
		}
		s := append([]float64(nil), xs...)
		sortFloats(s)
		return s[len(s)/2], nil
	case "perplexity":
		xs, err := floats(items)
		if err != nil {
			return 0, err
		}
		return math.Exp(-mean(xs)), nil
	case "weighted_perplexity":
		w, err := weightedMean(items)
		if err != nil {
			return 0, err
		}
		return math.Exp(-w), nil
	case "bits_per_byte":
		w, err := weightedMean(items)
		if err != nil {
			return 0, err
		}
		return -w / math.Ln2, nil
	case "flat_mean":
		var all []float64
		for _, it := range items {
			l, ok := it.([]float64)
			if !ok {
				return 0, fmt.Errorf("flat_mean: want lists, got %T", it)
			}
			all = append(all, l...)
		}
		if len(all) == 0 {
			return math.NaN(), nil
		}
		return mean(all), nil
	}
	return 0, fmt.Errorf("unknown aggregation %q", name)
}

func floats(items []any) ([]float64, error) {
	out := make([]float64, len(items))
	for i, it := range items {
		f, ok := it.(float64)
		if !ok {
			return nil, fmt.Errorf("want numbers, got %T", it)
		}
		out[i] = f
	}
	return out, nil
}

func weightedMean(items []any) (float64, error) {
	var a, b float64
	for _, it := range items {
		p, ok := it.(llCount)
		if !ok {
			return 0, fmt.Errorf("want (loglikelihood, count) pairs, got %T", it)
		}
		a += p.LL
		b += p.N
	}
	return a / b, nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// sampleStddev is lm-eval's sample_stddev (Bessel-corrected).
func sampleStddev(xs []float64) float64 {
	mu := mean(xs)
	var s float64
	for _, x := range xs {
		s += (x - mu) * (x - mu)
	}
	return math.Sqrt(s / float64(len(xs)-1))
}

// stderr is lm-eval's stderr_for_metric: closed form for the mean, a
// bootstrap (CPython's random, lm-eval's seeds and chunking, so the same
// number) for median and perplexity, none ("N/A", ok false) for the
// weighted aggregations.
func stderr(name string, items []any, bootstrapIters int) (float64, bool, error) {
	if bootstrapIters <= 0 || len(items) <= 1 {
		return 0, false, nil
	}
	switch name {
	case "mean":
		xs, err := floats(items)
		if err != nil {
			return 0, false, err
		}
		return sampleStddev(xs) / math.Sqrt(float64(len(xs))), true, nil
	case "median", "perplexity":
		xs, err := floats(items)
		if err != nil {
			return 0, false, err
		}
		return bootstrapStderr(name, xs, bootstrapIters), true, nil
	}
	return 0, false, nil
}

// bootstrapStderr is lm-eval's bootstrap_stderr: iters//1000 chunks (of
// min(1000, iters) resamples), chunk i drawing with random.Random(i).
func bootstrapStderr(agg string, xs []float64, iters int) float64 {
	chunk := min(1000, iters)
	var res []float64
	buf := make([]float64, len(xs))
	for i := 0; i < iters/chunk; i++ {
		r := pyrand.New(uint64(i))
		for j := 0; j < chunk; j++ {
			n := float64(len(xs))
			for k := range buf {
				buf[k] = xs[int(math.Floor(r.Random()*n))]
			}
			switch agg {
			case "perplexity":
				res = append(res, math.Exp(-mean(buf)))
			case "median":
				s := append([]float64(nil), buf...)
				sortFloats(s)
				res = append(res, s[len(s)/2])
			}
		}
	}
	return sampleStddev(res)
}

func sortFloats(s []float64) {
	// insertion sort is enough for the few uses; keep it simple and exact
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// pooledStderr is lm-eval's pooled_sample_stderr over subtasks.
func pooledStderr(stderrs []float64, sizes []int) float64 {
	var num float64
	total := 0
	for i, s := range stderrs {
		num += float64(sizes[i]-1) * s * s * float64(sizes[i])
		total += sizes[i]
	}
	v := num / float64(total-len(sizes))
	return math.Sqrt(v / float64(total))
}

// exactMatcher is lm-eval's exact_match (HF evaluate's): regexes removed
// (each in turn, from both sides), then case folded, punctuation and digits
// removed, then compared.
type exactMatcher struct {
	ignore                   []*regexp2.Regexp
	lower, noPunct, noDigits bool
}

func newExactMatcher(m evaltasks.Metric) (*exactMatcher, error) {
	em := &exactMatcher{lower: m.IgnoreCase, noPunct: m.IgnorePunctuation, noDigits: m.IgnoreNumbers}
	for _, r := range m.RegexesToIgnore {
		re, err := compilePyRegex(r)
		if err != nil {
			return nil, fmt.Errorf("exact_match: regexes_to_ignore %q: %w", r, err)
		}
		em.ignore = append(em.ignore, re)
	}
	return em, nil
}

// compilePyRegex compiles a Python re pattern with regexp2, whose default
// (.NET) syntax has what Python's has and RE2 lacks: lookarounds,
// backreferences, Unicode \d.
func compilePyRegex(p string) (*regexp2.Regexp, error) {
	return regexp2.Compile(p, regexp2.None)
}

const asciiPunct = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"

func (em *exactMatcher) norm(s string) string {
	for _, re := range em.ignore {
		out, err := re.Replace(s, "", -1, -1)
		if err == nil {
			s = out
		}
	}
	if em.lower {
		s = strings.ToLower(s)
	}
	if em.noPunct {
		s = strings.Map(func(r rune) rune {
			if strings.ContainsRune(asciiPunct, r) {
				return -1
			}
			return r
		}, s)
	}
	if em.noDigits {
		s = strings.Map(func(r rune) rune {
			if r >= '0' && r <= '9' {
				return -1
			}
			return r
		}, s)
	}
	return s
}

func (em *exactMatcher) match(pred, ref string) bool { return em.norm(pred) == em.norm(ref) }

var whitespaceRun = regexp.MustCompile(`\s+`)

// countWords is lm-eval's count_words: len(re.split(r"\s+", text)).
func countWords(s string) int { return len(whitespaceRun.Split(s, -1)) }

// countBytes is lm-eval's count_bytes: UTF-8 length.
func countBytes(s string) int { return len(s) }

// runeLen is Python's len(str).
func runeLen(s string) int { return utf8.RuneCountInString(s) }

// argmax is numpy's argmax: the first maximum.
func argmax(xs []float64) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}
