package plan

import (
	"fmt"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// ShellQuote returns s as one bash word that expands to exactly s. It is the
// only way a spec value reaches a script.
func ShellQuote(s string) (string, error) {
	q, err := syntax.Quote(s, syntax.LangBash)
	if err != nil {
		return "", fmt.Errorf("cannot quote %q for bash: %w", s, err)
	}
	return q, nil
}

// NixString returns s as a Nix double-quoted string literal that evaluates to
// exactly s. It is the only way a spec value reaches Nix. Every "$" is escaped,
// not only "${", so no later concatenation can form an interpolation.
func NixString(s string) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"', '\\', '$':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// tomlString returns s as a TOML basic string, for the specs nixplan init
// writes.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
