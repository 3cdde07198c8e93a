package plan

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Problem is one thing wrong with a spec. Its Error text is what the operator
// reads: the file, then either the position (for TOML syntax) or the key path
// (for values), then what is wrong.
type Problem struct {
	File    string // the spec file as given on the command line
	Line    int    // 1-based; 0 when the problem is about a value, not syntax
	Col     int    // 1-based; 0 when unknown
	Key     string // dotted key path, e.g. "network.ipv4.gateway"
	Msg     string // what is wrong, lowercase, no final period
	Hint    string // how to fix it, when that can be guessed
	Warning bool   // a warning does not make the spec invalid
}

// Error is printable whatever the problem quotes: a file name, a value from
// a spec or a string from a machine description cannot move the terminal's
// cursor or start a line of its own.
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
		if p.Col > 0 {
			fmt.Fprintf(&b, ":%d", p.Col)
		}
	}
	b.WriteString(": ")
	if p.Key != "" {
		fmt.Fprintf(&b, "%s", clip(p.Key))
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return Printable(b.String())
}

// Problems is every problem found in one or more specs, in the order found.
// It is an error only when it holds at least one problem that is not a warning.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Errors returns the problems that are not warnings.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if !p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// Warnings returns the problems that are warnings.
func (ps Problems) Warnings() Problems {
	var out Problems
	for _, p := range ps {
		if p.Warning {
			out = append(out, p)
		}
	}
	return out
}

// problems collects what Validate finds in one spec.
type problems struct {
	file   string            // the spec
	origin map[string]string // key → the file that set it, for includes
	list   Problems
	// refused are keys whose value holds what no value may (validateText):
	// any other problem of theirs would only repeat it.
	refused map[string]bool
}

// fileFor names the file a key's value came from: the include that set it,
// else the spec itself. "disks.datasets[2].name" is looked up as
// "disks.datasets", a missing key as its nearest set parent.
func (ps *problems) fileFor(key string) string {
	if i := strings.IndexByte(key, '['); i >= 0 {
		key = key[:i]
	}
	for key != "" {
		if f, ok := ps.origin[key]; ok {
			return f
		}
		key = parentKey(key)
	}
	return ps.file
}

func (ps *problems) add(key, hint, format string, args ...any) {
	if ps.refused[key] {
		return
	}
	ps.list = append(ps.list, Problem{File: ps.fileFor(key), Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

func (ps *problems) warn(key, hint, format string, args ...any) {
	if ps.refused[key] {
		return
	}
	ps.list = append(ps.list, Problem{File: ps.fileFor(key), Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint, Warning: true})
}

// maxShown is how much of a value a message quotes.
const maxShown = 160

// clipped is a value quoted in a message: longer than maxShown bytes, it is
// cut there (at a character boundary) and its length follows, so that a
// 100 MB host name is not echoed whole: "aaaa…"… (104857600 bytes).
type clipped string

// clip marks a value for a message; %q and %s print it clipped.
func clip(s string) clipped { return clipped(s) }

func (c clipped) Format(f fmt.State, verb rune) {
	s := string(c)
	if len(s) <= maxShown {
		fmt.Fprintf(f, fmt.FormatString(f, verb), s)
		return
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s[:cut])
	fmt.Fprintf(f, "… (%d bytes)", len(s))
}
