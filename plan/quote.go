package plan

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

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

// ShellQuotePOSIX returns s as one POSIX sh word that expands to exactly s,
// for install.sh, which dash and macOS's sh run: the same quoting as
// ShellQuote, but an error instead of bash's $'...' form.
func ShellQuotePOSIX(s string) (string, error) {
	q, err := syntax.Quote(s, syntax.LangPOSIX)
	if err != nil {
		return "", fmt.Errorf("cannot quote %q for POSIX sh: %w", s, err)
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

// Text outside a quoted value (headers, comments, markdown) follows one rule:
// it is printable, so nothing in it can end the line or the comment, and in
// checklist.md it is shown literally in a code span, so nothing in it renders
// as a link, HTML or formatting. CommentText and MarkdownCode apply the rule;
// templates reach them as "comment", "code" and "cell".

// Printable returns s with every character that is not graphic escaped in
// Go's notation: control characters (line breaks among them), Unicode line
// and paragraph separators, format characters such as bidirectional
// overrides, and bytes that are not UTF-8 become \x1b, \u2028 or \xff.
// Printable text stays on its line in any file and in a terminal.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsGraphic(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsGraphic(r):
			b.WriteString(s[i : i+n])
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r <= 0xffff:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			fmt.Fprintf(&b, `\U%08x`, r)
		}
		i += n
	}
	return b.String()
}

// CommentText returns s fit for a comment or header line of any bundle file:
// after "#" in bash, Nix and SHA256SUMS, or inside checklist.md's "<!-- -->".
// It is Printable, and ">" is escaped too, so that no "-->" can end an HTML
// comment.
func CommentText(s string) string {
	return strings.ReplaceAll(Printable(s), ">", `\x3e`)
}

// MarkdownCode returns s as one CommonMark code span, which shows its
// content literally: no link, HTML, emphasis or line break can come out of
// it. The fence is one backtick longer than the longest run of backticks in
// s, and a space pads content that starts or ends with a backtick or with
// spaces on both ends, which CommonMark strips (spec 0.29, "Code spans").
func MarkdownCode(s string) string {
	s = Printable(s)
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	pad := ""
	if s == "" || strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") ||
		(strings.HasPrefix(s, " ") && strings.HasSuffix(s, " ") && strings.Trim(s, " ") != "") {
		pad = " "
	}
	return fence + pad + s + pad + fence
}

// MarkdownCell is MarkdownCode for a cell of a GFM table, where a "|" ends
// the cell even inside a code span unless it is escaped as "\|" (GFM spec
// 0.29, 4.10 "Tables"; cmark-gfm drops the backslash inside the span).
func MarkdownCell(s string) string {
	return strings.ReplaceAll(MarkdownCode(s), "|", `\|`)
}
