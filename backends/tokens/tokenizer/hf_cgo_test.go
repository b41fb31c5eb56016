//go:build hftokenizers

package tokenizer

import "testing"

// With -tags hftokenizers the parity suite also runs on the cgo tokenizer.
func init() {
	implementations = append(implementations, struct {
		name string
		open func(t testing.TB, f family) encoderUnderTest
	}{"hf", func(t testing.TB, f family) encoderUnderTest {
		tk, err := HFFromFile(familyFile(t, f))
		if err != nil {
			t.Fatalf("%s: %v", f.Name, err)
		}
		t.Cleanup(func() { tk.Close() })
		return tk
	}})
}
