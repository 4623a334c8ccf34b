package parser

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"testing"
)

// TestMatchersAsRegexps: matchLabel and matchRef match what the regexps
// they replace matched, with the same submatches.
func TestMatchersAsRegexps(t *testing.T) {
	labelRE := regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*):$`)
	refRE := regexp.MustCompile(`^@([A-Za-z_][A-Za-z0-9_]*)(?::([0-9]+))?$`)
	inputs := []string{"", "@", ":", "@:", "a:", "_:", "a1:", "1a:", "a::", "a:\n", "@a", "@_", "@a1", "@1a",
		"@a:", "@a:0", "@a:12", "@a:1x", "@a:1:2", "@a-b", "@a\n", "@a:1\n", "@stdin", "@fifo", "@é", "é:", "@A_9:007"}
	r := rand.New(rand.NewPCG(1, 2))
	const alphabet = "@:_aZ09-\n"
	for range 20000 {
		b := make([]byte, r.IntN(7))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		inputs = append(inputs, string(b))
	}
	for _, s := range inputs {
		if got, want := matchLabel(s), labelRE.FindStringSubmatch(s); !slices.Equal(got, want) {
			t.Errorf("matchLabel(%q) = %q, the regexp %q", s, got, want)
		}
		if got, want := matchRef(s), refRE.FindStringSubmatch(s); !slices.Equal(got, want) {
			t.Errorf("matchRef(%q) = %q, the regexp %q", s, got, want)
		}
	}
}
