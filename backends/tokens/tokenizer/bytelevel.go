package tokenizer

import "unicode/utf8"

// byteToChar maps each byte to the printable character GPT-2's byte-level
// alphabet uses for it; charToByte is the inverse.
var (
	byteToChar    [256]rune
	byteToCharStr [256]string
	charToByte    = map[rune]byte{}
)

func init() {
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			byteToChar[b] = rune(b)
		} else {
			byteToChar[b] = rune(256 + n)
			n++
		}
		byteToCharStr[b] = string(byteToChar[b])
		charToByte[byteToChar[b]] = byte(b)
	}
}

// toByteLevel maps every byte of s to its byte-level character.
func toByteLevel(s string) string {
	buf := make([]byte, 0, len(s)*2)
	for i := 0; i < len(s); i++ {
		buf = utf8.AppendRune(buf, byteToChar[s[i]])
	}
	return string(buf)
}

// fromByteLevel maps a byte-level string back to its bytes; ok is false when
// s holds a character outside the alphabet.
func fromByteLevel(s string) (string, bool) {
	buf := make([]byte, 0, len(s))
	for _, r := range s {
		b, ok := charToByte[r]
		if !ok {
			return "", false
		}
		buf = append(buf, b)
	}
	return string(buf), true
}
