package ifeval

import (
	"regexp"
	"strings"
)

// The rules of lm-eval's instructions_util.split_into_sentences.
const (
	alphabets = `([A-Za-z])`
	prefixes  = `(Mr|St|Mrs|Ms|Dr)[.]`
	suffixes  = `(Inc|Ltd|Jr|Sr|Co)`
	starters  = `(Mr|Mrs|Ms|Dr|Prof|Capt|Cpt|Lt|He\s|She\s|It\s|They\s|Their\s|Our\s|We\s|But\s|However\s|That\s|This\s|Wherever)`
	acronyms  = `([A-Z][.][A-Z][.](?:[A-Z][.])?)`
	websites  = `[.](com|net|org|io|gov|edu|me)`
	digits    = `([0-9])`
)

var (
	rePrefixes = regexp.MustCompile(prefixes)
	reWebsites = regexp.MustCompile(websites)
	reDigits   = regexp.MustCompile(digits + `[.]` + digits)
	reDots     = regexp.MustCompile(`\.{2,}`)
	reSingle   = regexp.MustCompile(`\s` + alphabets + `[.] `)
	reAcronym  = regexp.MustCompile(acronyms + ` ` + starters)
	reThree    = regexp.MustCompile(alphabets + `[.]` + alphabets + `[.]` + alphabets + `[.]`)
	reTwo      = regexp.MustCompile(alphabets + `[.]` + alphabets + `[.]`)
	reSufStart = regexp.MustCompile(` ` + suffixes + `[.] ` + starters)
	reSuffix   = regexp.MustCompile(` ` + suffixes + `[.]`)
	reAlphaDot = regexp.MustCompile(` ` + alphabets + `[.]`)
)

// SplitIntoSentences is lm-eval's split_into_sentences.
func SplitIntoSentences(text string) []string {
	text = " " + text + "  "
	text = strings.ReplaceAll(text, "\n", " ")
	text = rePrefixes.ReplaceAllString(text, "${1}<prd>")
	text = reWebsites.ReplaceAllString(text, "<prd>${1}")
	text = reDigits.ReplaceAllString(text, "${1}<prd>${2}")
	text = reDots.ReplaceAllStringFunc(text, func(m string) string { return strings.Repeat("<prd>", len(m)) + "<stop>" })
	if strings.Contains(text, "Ph.D") {
		text = strings.ReplaceAll(text, "Ph.D.", "Ph<prd>D<prd>")
	}
	text = reSingle.ReplaceAllString(text, " ${1}<prd> ")
	text = reAcronym.ReplaceAllString(text, "${1}<stop> ${2}")
	text = reThree.ReplaceAllString(text, "${1}<prd>${2}<prd>${3}<prd>")
	text = reTwo.ReplaceAllString(text, "${1}<prd>${2}<prd>")
	text = reSufStart.ReplaceAllString(text, " ${1}<stop> ${2}")
	text = reSuffix.ReplaceAllString(text, " ${1}<prd>")
	text = reAlphaDot.ReplaceAllString(text, " ${1}<prd>")
	if strings.Contains(text, "”") {
		text = strings.ReplaceAll(text, ".”", "”.")
	}
	if strings.Contains(text, `"`) {
		text = strings.ReplaceAll(text, `."`, `".`)
	}
	if strings.Contains(text, "!") {
		text = strings.ReplaceAll(text, `!"`, `"!`)
	}
	if strings.Contains(text, "?") {
		text = strings.ReplaceAll(text, `?"`, `"?`)
	}
	text = strings.ReplaceAll(text, ".", ".<stop>")
	text = strings.ReplaceAll(text, "?", "?<stop>")
	text = strings.ReplaceAll(text, "!", "!<stop>")
	text = strings.ReplaceAll(text, "<prd>", ".")
	parts := strings.Split(text, "<stop>")
	for i, s := range parts {
		parts[i] = strings.TrimSpace(s)
	}
	if len(parts) > 0 && parts[len(parts)-1] == "" {
		parts = parts[:len(parts)-1]
	}
	return parts
}
