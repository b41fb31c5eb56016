package tokenizer

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// serdePow10 is serde_json's POW10 table: 1e0 ... 1e308, each correctly
// rounded.
var serdePow10 = func() (t [309]float64) {
	for i := range t {
		t[i], _ = strconv.ParseFloat("1e"+strconv.Itoa(i), 64)
	}
	return
}()

// parseSerdeFloat converts a JSON number to float64 as the oracle does:
// serde_json without its float_roundtrip feature accumulates at most 19-20
// significant digits in a uint64 (ignoring the rest), converts that to a
// float64 and multiplies or divides by a power of ten, rounding twice. About
// one score in eight of a typical Unigram vocabulary comes out one ulp away
// from the correctly rounded value, which can decide Viterbi ties, so scores
// are read this way. ok is false when num is not a JSON number or is out of
// range (serde_json's "number out of range").
func parseSerdeFloat(num []byte) (f float64, ok bool) {
	i := 0
	neg := false
	if i < len(num) && num[i] == '-' {
		neg = true
		i++
	}
	if i >= len(num) || num[i] < '0' || num[i] > '9' {
		return 0, false
	}
	if num[i] == '0' && i+1 < len(num) && num[i+1] >= '0' && num[i+1] <= '9' {
		return 0, false
	}
	var sig uint64
	exp := 0
	over := false
	for ; i < len(num) && num[i] >= '0' && num[i] <= '9'; i++ {
		d := uint64(num[i] - '0')
		if over || sig > (math.MaxUint64-d)/10 {
			// parse_long_integer: further integer digits only scale.
			over = true
			exp++
			continue
		}
		sig = sig*10 + d
	}
	isFloat := false
	if i < len(num) && num[i] == '.' {
		isFloat = true
		i++
		start := i
		fracOver := false
		for ; i < len(num) && num[i] >= '0' && num[i] <= '9'; i++ {
			d := uint64(num[i] - '0')
			if fracOver || sig > (math.MaxUint64-d)/10 {
				fracOver = true // parse_decimal_overflow: ignore the rest
				continue
			}
			sig = sig*10 + d
			exp--
		}
		if i == start {
			return 0, false
		}
	}
	if i < len(num) && (num[i] == 'e' || num[i] == 'E') {
		isFloat = true
		i++
		expNeg := false
		if i < len(num) && (num[i] == '+' || num[i] == '-') {
			expNeg = num[i] == '-'
			i++
		}
		if i >= len(num) || num[i] < '0' || num[i] > '9' {
			return 0, false
		}
		e := 0
		for ; i < len(num) && num[i] >= '0' && num[i] <= '9'; i++ {
			d := int(num[i] - '0')
			if e > (math.MaxInt32-d)/10 {
				// parse_exponent_overflow
				if sig != 0 && !expNeg {
					return 0, false
				}
				for ; i < len(num) && num[i] >= '0' && num[i] <= '9'; i++ {
				}
				if i != len(num) {
					return 0, false
				}
				if neg {
					return math.Copysign(0, -1), true
				}
				return 0, true
			}
			e = e*10 + d
		}
		if expNeg {
			exp = satAdd32(exp, -e)
		} else {
			exp = satAdd32(exp, e)
		}
	}
	if i != len(num) {
		return 0, false
	}
	if !isFloat && !over {
		// An integer: u64 or i64, then `as f64`.
		f = float64(sig)
		if neg {
			f = -f
		}
		return f, true
	}
	f = float64(sig)
	for {
		a := exp
		if a < 0 {
			a = -a
		}
		if a < len(serdePow10) {
			if exp >= 0 {
				f *= serdePow10[a]
				if math.IsInf(f, 0) {
					return 0, false
				}
			} else {
				f /= serdePow10[a]
			}
			break
		}
		if f == 0 {
			break
		}
		if exp >= 0 {
			return 0, false
		}
		f /= 1e308
		exp += 308
	}
	if neg {
		f = -f
	}
	return f, true
}

func satAdd32(a, b int) int {
	s := int64(a) + int64(b)
	if s > math.MaxInt32 {
		return math.MaxInt32
	}
	if s < math.MinInt32 {
		return math.MinInt32
	}
	return int(s)
}

// parseUnigramVocab reads [["piece", score], ...].
func parseUnigramVocab(field string, raw json.RawMessage) ([]string, []float64, error) {
	if isNull(raw) {
		return nil, nil, fieldf(field, "missing")
	}
	var entries [][]json.RawMessage
	if err := json.Unmarshal(raw, &entries); err != nil {
		return nil, nil, fieldf(field, "expected [[piece, score], ...]: %w", err)
	}
	pieces := make([]string, len(entries))
	scores := make([]float64, len(entries))
	for i, e := range entries {
		if len(e) != 2 {
			return nil, nil, fieldf(fmt.Sprintf("%s[%d]", field, i), "expected [piece, score], got %d elements", len(e))
		}
		if err := json.Unmarshal(e[0], &pieces[i]); err != nil {
			return nil, nil, fieldf(fmt.Sprintf("%s[%d][0]", field, i), "expected a string: %w", err)
		}
		f, ok := parseSerdeFloat(trimSpace(e[1]))
		if !ok {
			return nil, nil, fieldf(fmt.Sprintf("%s[%d][1]", field, i), "expected a number (score), got %s", e[1])
		}
		scores[i] = f
	}
	return pieces, scores, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}
