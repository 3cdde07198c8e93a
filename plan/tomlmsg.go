package plan

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// This file puts the TOML decoder's errors in the user's words: types as TOML
// names them, an example of the right form for the key, and the line and
// column of an unknown key, which the decoder does not report.

var typeErrorRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): incompatible types: TOML value has type (.*); destination has type (.*)$`)

// tomlTypeNames maps the decoder's Go type names, for what the file holds and
// for what the key wants, to TOML's names.
var tomlTypeNames = map[string]string{
	"string": "string", "int64": "integer", "integer": "integer", "float64": "float", "float": "float",
	"bool": "boolean", "boolean": "boolean", "[]any": "array", "slice": "array",
	"map[string]any": "table", "map": "table", "struct": "table",
	"time.Time": "date-time", "toml.LocalDate": "date", "toml.LocalTime": "time", "toml.LocalDatetime": "date-time",
	"primitive (string-like)": "string",
}

// keyExamples holds an example of the right form for the keys whose form is
// not plain from their type.
var keyExamples = map[string]string{
	"include":                      `["common.toml"]`,
	"host.nixos":                   `"24.05"`,
	"host.state_version":           `"24.05"`,
	"host.host_id":                 `"1234abcd"`,
	"network.nameservers":          `["8.8.8.8"]`,
	"network.ipv4.address":         `"203.0.113.10"`,
	"network.ipv4.prefix":          `24`,
	"network.ipv4.gateway":         `"203.0.113.254"`,
	"network.ipv6.address":         `"2001:db8:1:2::2"`,
	"network.ipv6.prefix":          `64`,
	"network.ipv6.gateway":         `"fe80::1"`,
	"network.mac":                  `"aa:bb:cc:dd:ee:ff"`,
	"disks.devices":                `["/dev/sda"]`,
	"disks.boot_size":              `"512MiB"`,
	"disks.swap_size":              `"8GiB"`,
	"disks.arc_max":                `"4GiB"`,
	"disks.identity.size_bytes":    `2000398934016`,
	"ssh.authorized_keys":          `["ssh-ed25519 AAAA... me@laptop"]`,
	"channel.url":                  `"https://releases.nixos.org/nixos/24.05/nixos-24.05.1234.abcdef0"`,
	"flake.nixpkgs_rev":            `"0123456789abcdef0123456789abcdef01234567"`,
	"kexec.url":                    `"https://github.com/nix-community/nixos-images/releases/download/nixos-24.05/nixos-kexec-installer-noninteractive-x86_64-linux.tar.gz"`,
	"network.ipv4.gateway_on_link": `true`,
}

// typeProblem rewrites the decoder's type mismatch, or returns false when err
// is not one.
func typeProblem(file string, data []byte, err error) (Problem, bool) {
	m := typeErrorRE.FindStringSubmatch(err.Error())
	if m == nil {
		return Problem{}, false
	}
	line, _ := strconv.Atoi(m[1])
	key := m[2]
	have, want := tomlTypeName(m[3]), tomlTypeName(m[4])
	p := Problem{File: file, Line: line, Key: key}
	if value := valueOnLine(data, line, key); value != "" {
		p.Msg = fmt.Sprintf("%s is %s; this key takes %s", value, articled(have), articled(want))
	} else {
		p.Msg = fmt.Sprintf("the value is %s; this key takes %s", articled(have), articled(want))
	}
	p.Hint = "write it as " + exampleFor(key, want, m[3], data, line)
	return p, true
}

func tomlTypeName(goName string) string {
	if n, ok := tomlTypeNames[goName]; ok {
		return n
	}
	if strings.HasPrefix(goName, "[]") {
		return "array"
	}
	if strings.HasPrefix(goName, "map[") {
		return "table"
	}
	return goName
}

func article(typeName string) string {
	if strings.IndexByte("aeiou", typeName[0]) >= 0 {
		return "an"
	}
	return "a"
}

func articled(typeName string) string { return article(typeName) + " " + typeName }

// exampleFor shows the key in the right form: the value the file holds,
// turned into the type the key takes where that is plain ("24" → 24,
// "8.8.8.8" → ["8.8.8.8"], 24.05 → "24.05"), else the key's example.
func exampleFor(key, want, have string, data []byte, line int) string {
	name := key[strings.LastIndex(key, ".")+1:]
	value := valueOnLine(data, line, key)
	unquoted, quoted := value, false
	if u, err := strconv.Unquote(value); err == nil {
		unquoted, quoted = u, true
	}
	_, needsUnit := sizeKeys[genericKey(key)]
	switch {
	case value == "":
	case want == "string" && !quoted && !needsUnit && tomlTypeName(have) != "array" && tomlTypeName(have) != "table":
		return name + " = " + tomlString(value) + " (a string goes in quotes)"
	case want == "integer" && quoted && isInteger(unquoted):
		return name + " = " + unquoted + " (a number goes without quotes)"
	case want == "boolean" && quoted && (unquoted == "true" || unquoted == "false"):
		return name + " = " + unquoted + " (true or false, without quotes)"
	case want == "array" && quoted:
		return name + " = [" + value + "] (an array goes in [ ], one value for each item)"
	}
	if ex, ok := keyExamples[genericKey(key)]; ok {
		return name + " = " + ex
	}
	switch want {
	case "string":
		return name + ` = "..." (a string goes in quotes)`
	case "integer":
		return name + " = 24 (a number goes without quotes)"
	case "boolean":
		return name + " = true (true or false, without quotes)"
	case "array":
		return name + ` = ["..."] (an array goes in [ ])`
	case "table":
		return "a table: [" + key + "] on a line of its own, then its keys"
	}
	return name + " = ..."
}

// sizeKeys take a size with its unit: a bare number is not made a string.
var sizeKeys = map[string]bool{"disks.boot_size": true, "disks.swap_size": true, "disks.arc_max": true}

func isInteger(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

// genericKey drops list indexes from a key path: disks.datasets[0].name is
// disks.datasets.name.
func genericKey(key string) string { return listIndexRE.ReplaceAllString(key, "") }

var listIndexRE = regexp.MustCompile(`\[\d+\]`)

// valueOnLine returns the text of the value of key's last part on the given
// line, as written ("24.05", 512, "8.8.8.8"), or "" when the line does not
// hold it plainly.
func valueOnLine(data []byte, line int, key string) string {
	lines := bytes.Split(data, []byte("\n"))
	if line < 1 || line > len(lines) {
		return ""
	}
	text := string(lines[line-1])
	name := key[strings.LastIndex(key, ".")+1:]
	m := regexp.MustCompile(`(?:^|[\s{,.])` + regexp.QuoteMeta(name) + `\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,}#]+)`).FindStringSubmatch(text)
	if m == nil {
		return ""
	}
	return m[1]
}

// keyPosition finds where a key of the spec is written: the line and column
// where it starts, in a [table] header, a key = value line, a dotted key or
// an inline table on one line. It returns 0, 0 when it cannot tell: a key
// inside a multi-line string or spread over lines is not looked for.
func keyPosition(data []byte, key []string) (line, col int) {
	var table []string
	inMultiline := ""
	for i, raw := range strings.Split(string(data), "\n") {
		text := raw
		if inMultiline != "" {
			if strings.Contains(text, inMultiline) {
				inMultiline = ""
			}
			continue
		}
		for _, q := range []string{`"""`, `'''`} {
			if strings.Count(text, q)%2 == 1 {
				inMultiline = q
			}
		}
		trimmed := strings.TrimLeft(text, " \t")
		indent := len(text) - len(trimmed)
		if strings.HasPrefix(trimmed, "[") {
			header := strings.TrimLeft(trimmed, "[")
			end := strings.Index(header, "]")
			if end < 0 {
				continue
			}
			parts, _ := splitKey(header[:end])
			if pathEqual(parts, key) {
				return i + 1, indent + (len(trimmed) - len(header)) + leadingSpace(header[:end]) + 1
			}
			table = parts
			continue
		}
		if c, ok := findKeyIn(trimmed, table, key); ok {
			return i + 1, indent + c + 1
		}
	}
	return 0, 0
}

// findKeyIn looks for key in one line of key = value pairs under table,
// following inline tables; it returns the offset where the key starts.
func findKeyIn(text string, table, key []string) (int, bool) {
	eq := indexOutsideQuotes(text, '=')
	if eq < 0 {
		return 0, false
	}
	left := text[:eq]
	parts, ok := splitKey(left)
	if !ok || len(parts) == 0 {
		return 0, false
	}
	full := append(append([]string(nil), table...), parts...)
	if pathEqual(full, key) {
		return 0, true
	}
	// An inline table: { a = 1, b = { c = 2 } } on this line.
	rest := strings.TrimLeft(text[eq+1:], " \t")
	off := len(text) - len(rest)
	if !strings.HasPrefix(rest, "{") || len(full) >= len(key) || !pathEqual(full, key[:len(full)]) {
		return 0, false
	}
	inner := rest[1:]
	pos := off + 1
	for _, item := range splitOutside(inner, ',') {
		if c, ok := findKeyIn(strings.TrimLeft(item.text, " \t"), full, key); ok {
			return pos + item.start + (len(item.text) - len(strings.TrimLeft(item.text, " \t"))) + c, true
		}
	}
	return 0, false
}

type piece struct {
	text  string
	start int
}

// splitOutside splits s at sep where sep is outside quotes and brackets,
// up to the closing brace of the inline table s starts in.
func splitOutside(s string, sep byte) []piece {
	var out []piece
	depth, start := 0, 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth == 0 {
				return append(out, piece{s[start:i], start})
			}
			depth--
		case c == sep && depth == 0:
			out = append(out, piece{s[start:i], start})
			start = i + 1
		}
	}
	return append(out, piece{s[start:], start})
}

func indexOutsideQuotes(s string, c byte) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		switch {
		case quote != 0:
			if s[i] == '\\' && quote == '"' {
				i++
			} else if s[i] == quote {
				quote = 0
			}
		case s[i] == '"' || s[i] == '\'':
			quote = s[i]
		case s[i] == '#':
			return -1
		case s[i] == c:
			return i
		}
	}
	return -1
}

// splitKey splits a TOML key (bare, quoted or dotted) into its parts.
func splitKey(s string) ([]string, bool) {
	var parts []string
	for _, p := range splitOutside(s, '.') {
		t := strings.TrimSpace(p.text)
		switch {
		case t == "":
			return nil, false
		case t[0] == '"':
			u, err := strconv.Unquote(t)
			if err != nil {
				return nil, false
			}
			t = u
		case t[0] == '\'':
			t = strings.Trim(t, "'")
		case strings.ContainsAny(t, " \t"):
			return nil, false
		}
		parts = append(parts, t)
	}
	return parts, true
}

func leadingSpace(s string) int { return len(s) - len(strings.TrimLeft(s, " \t")) }

func pathEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
