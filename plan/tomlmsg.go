package plan

import (
	"bytes"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
)

// This file puts the TOML decoder's errors in the user's words: types as TOML
// names them, an example of the right form for the key, and the line and
// column of an unknown key, which the decoder does not report.

// The decoder's two forms of a type mismatch: a value of the wrong type, and
// a value where a table belongs (BurntSushi/toml v1.6.0 decode.go, badtype
// and "type mismatch for").
var (
	typeErrorRE  = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): incompatible types: TOML value has type (.*); destination has type (.*)$`)
	tableErrorRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): type mismatch for .*: expected table but found (.*)$`)
)

// tomlTypeNames maps the decoder's Go type names, for what the file holds and
// for what the key wants, to TOML's names.
var tomlTypeNames = map[string]string{
	"string": "string", "int64": "integer", "integer": "integer", "float64": "float", "float": "float",
	"bool": "boolean", "boolean": "boolean", "[]any": "array", "slice": "array",
	"map[string]any": "table", "map": "table", "struct": "table",
	"time.Time": "date-time", "toml.LocalDate": "date", "toml.LocalTime": "time", "toml.LocalDatetime": "date-time",
	"primitive (string-like)": "string",
}

// keyKinds says what each key of a spec takes, in TOML's words, from Spec's
// types: "string", "integer", "boolean", "array of strings", "array of
// tables" or "table".
var keyKinds = func() map[string]string {
	kinds := map[string]string{}
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		for i := 0; i < t.NumField(); i++ {
			tag := t.Field(i).Tag.Get("toml")
			if tag == "" || tag == "-" {
				continue
			}
			key, ft := prefix+tag, t.Field(i).Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			switch {
			case ft.Kind() == reflect.Struct:
				kinds[key] = "table"
				walk(key+".", ft)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				kinds[key] = "array of tables"
				walk(key+".", ft.Elem())
			case ft.Kind() == reflect.Slice:
				kinds[key] = "array of " + tomlTypeName(ft.Elem().Kind().String()) + "s"
			default:
				kinds[key] = tomlTypeName(ft.Kind().String())
			}
		}
	}
	walk("", reflect.TypeOf(Spec{}))
	return kinds
}()

// keyExamples holds the right form of keys whose form is not plain from
// their type; examples are valid values, so a hint never proposes one the
// key refuses.
var keyExamples = map[string]string{
	"include":                      `["common.toml"]`,
	"provider":                     `"ovh"`,
	"host.name":                    `"web1"`,
	"host.nixos":                   `"24.05"`,
	"host.state_version":           `"24.05"`,
	"host.host_id":                 `"1234abcd"`,
	"host.firmware":                `"bios"`,
	"network.interface":            `"eth0"`,
	"network.nameservers":          `["8.8.8.8"]`,
	"network.ipv4.address":         `"203.0.113.10"`,
	"network.ipv4.prefix":          `24`,
	"network.ipv4.gateway":         `"203.0.113.254"`,
	"network.ipv6.address":         `"2001:db8:1:2::2"`,
	"network.ipv6.prefix":          `64`,
	"network.ipv6.gateway":         `"fe80::1"`,
	"network.mac":                  `"aa:bb:cc:dd:ee:ff"`,
	"disks.layout":                 `"zfs"`,
	"disks.topology":               `"mirror"`,
	"disks.boot":                   `"all"`,
	"disks.label":                  `"gpt"`,
	"disks.pool":                   `"rpool"`,
	"disks.devices":                `["/dev/sda"]`,
	"disks.boot_size":              `"512MiB"`,
	"disks.swap_size":              `"8GiB"`,
	"disks.arc_max":                `"4GiB"`,
	"disks.identity.size_bytes":    `2000398934016`,
	"disks.datasets.name":          `"root/nixos"`,
	"disks.datasets.mountpoint":    `"/"`,
	"ssh.authorized_keys":          `["ssh-ed25519 AAAA... me@laptop"]`,
	"channel.url":                  `"https://releases.nixos.org/nixos/24.05/nixos-24.05.1234.abcdef0"`,
	"flake.nixpkgs_rev":            `"0123456789abcdef0123456789abcdef01234567"`,
	"kexec.url":                    `"https://github.com/nix-community/nixos-images/releases/download/nixos-24.05/nixos-kexec-installer-noninteractive-x86_64-linux.tar.gz"`,
	"network.ipv4.gateway_on_link": `true`,
}

// typeProblem rewrites the decoder's type mismatch, or returns false when err
// is not one.
func typeProblem(file string, data []byte, err error) (Problem, bool) {
	var line int
	var key, have, want string
	if m := typeErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		key, have, want = m[2], tomlTypeName(m[3]), tomlTypeName(m[4])
	} else if m := tableErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		key, have, want = m[2], tomlTypeName(m[3]), "table"
	} else {
		return Problem{}, false
	}
	generic := genericKey(key)
	kind := keyKinds[generic]
	if kind == "" {
		kind = want
	}
	p := Problem{File: file, Line: line, Key: key}
	// The decoder names the element's types for an array's element. For a
	// list of tables it reports the line of the key's last entry, which need
	// not be the one in error: a value is quoted only when it is the one.
	value := valueOnLine(data, line, key)
	if value != "" && literalType(value) != have {
		value = ""
	}
	if value == "" && inListOfTables(generic) {
		p.Line = 0
	}
	switch {
	case strings.HasPrefix(kind, "array of ") && kind != "array of tables" && have != "array" && want != "array":
		p.Msg = fmt.Sprintf("the array holds %s; this key takes %s", articled(have), articleFor(kind))
	case value != "":
		p.Msg = fmt.Sprintf("%s is %s; this key takes %s", value, articled(have), articleFor(kind))
	default:
		p.Msg = fmt.Sprintf("the value is %s; this key takes %s", articled(have), articleFor(kind))
	}
	p.Hint = "write it as " + exampleFor(key, kind, have, value)
	return p, true
}

// inListOfTables reports whether key is a key of the entries of a list of
// tables, such as disks.datasets.name.
func inListOfTables(key string) bool {
	for i := strings.LastIndexByte(key, '.'); i > 0; i = strings.LastIndexByte(key[:i], '.') {
		if keyKinds[key[:i]] == "array of tables" {
			return true
		}
	}
	return false
}

// literalType is the TOML type of a value as written: a quoted string, a
// boolean, an integer or a float; "" when it is none of them plainly.
func literalType(v string) string {
	switch {
	case strings.HasPrefix(v, `"`) || strings.HasPrefix(v, "'"):
		return "string"
	case v == "true" || v == "false":
		return "boolean"
	case isInteger(strings.ReplaceAll(v, "_", "")):
		return "integer"
	}
	if _, err := strconv.ParseFloat(strings.ReplaceAll(v, "_", ""), 64); err == nil {
		return "float"
	}
	return ""
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
	switch goName {
	case "int", "int8", "int16", "int32", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	}
	return goName
}

func articleFor(s string) string {
	if strings.HasPrefix(s, "array of") {
		return "an " + s
	}
	return articled(s)
}

func articled(typeName string) string {
	if typeName != "" && strings.IndexByte("aeiou", typeName[0]) >= 0 {
		return "an " + typeName
	}
	return "a " + typeName
}

// exampleFor shows the key in the right form: the key's example, or the
// value the file holds turned into the type the key takes where that is
// plain ("24" → 24, "8.8.8.8" → ["8.8.8.8"]).
func exampleFor(key, kind, have, value string) string {
	name := key[strings.LastIndex(key, ".")+1:]
	if kind == "array of tables" {
		return "[[" + genericKey(key) + "]] on a line of its own for each entry, its keys below it"
	}
	if kind == "table" {
		return "[" + genericKey(key) + "] on a line of its own, its keys below it"
	}
	unquoted, quoted := value, false
	if u, err := strconv.Unquote(value); err == nil {
		unquoted, quoted = u, true
	}
	switch {
	case value == "":
	case kind == "integer" && quoted && isInteger(unquoted):
		return name + " = " + unquoted + " (a number goes without quotes)"
	case kind == "boolean" && quoted && (unquoted == "true" || unquoted == "false"):
		return name + " = " + unquoted + " (true or false, without quotes)"
	case kind == "array of strings" && quoted && !strings.ContainsAny(unquoted, ", "):
		return name + " = [" + value + "] (an array goes in [ ], one string for each value)"
	}
	if ex, ok := keyExamples[genericKey(key)]; ok {
		return name + " = " + ex
	}
	switch kind {
	case "string":
		return name + ` = "..." (a string goes in quotes)`
	case "integer":
		return name + " = 24 (a number goes without quotes)"
	case "boolean":
		return name + " = true (true or false, without quotes)"
	case "array of strings":
		return name + ` = ["...", "..."] (an array goes in [ ], one string for each value)`
	}
	return name + " = ..."
}

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
// hold it plainly (an array, a table, a multi-line string).
func valueOnLine(data []byte, line int, key string) string {
	lines := bytes.SplitN(data, []byte("\n"), line+1)
	if line < 1 || line > len(lines) {
		return ""
	}
	text := string(lines[line-1])
	name := key[strings.LastIndex(key, ".")+1:]
	m := regexp.MustCompile(`(?:^|[\s{,.])` + regexp.QuoteMeta(name) + `\s*=\s*("(?:[^"\\]|\\.)*"|'[^']*'|[^\s,}#\[{]+)`).FindStringSubmatch(text)
	if m == nil || strings.HasPrefix(m[1], `""`) || strings.HasPrefix(m[1], "''") && len(m[1]) > 2 {
		return ""
	}
	return strings.TrimRight(m[1], "\r")
}

// position is where a key is written: its line and column, 1-based.
type position struct{ line, col int }

// keyPositions finds, in one pass, where every key of a spec is written: in
// a [table] header, a key = value line, a dotted key, or an inline table on
// one line, each in the order written (a key of a list of tables once for
// each entry). Keys are joined by dots. A key inside a multi-line string or
// spread over lines is not looked for.
func keyPositions(data []byte) map[string][]position {
	found := map[string][]position{}
	var table []string
	inMultiline := ""
	for i, text := range strings.Split(string(data), "\n") {
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
			key := strings.Join(parts, ".")
			found[key] = append(found[key], position{i + 1, indent + (len(trimmed) - len(header)) + leadingSpace(header[:end]) + 1})
			table = parts
			continue
		}
		collectKeys(trimmed, table, func(path []string, off int) {
			key := strings.Join(path, ".")
			found[key] = append(found[key], position{i + 1, indent + off + 1})
		})
	}
	return found
}

// collectKeys finds the keys of one line of key = value pairs under table,
// following inline tables, and calls add with each key's path and offset.
func collectKeys(text string, table []string, add func(path []string, off int)) {
	eq := indexOutsideQuotes(text, '=')
	if eq < 0 {
		return
	}
	parts, ok := splitKey(text[:eq])
	if !ok || len(parts) == 0 {
		return
	}
	full := append(append([]string(nil), table...), parts...)
	add(full, 0)
	rest := strings.TrimLeft(text[eq+1:], " \t")
	off := len(text) - len(rest)
	if !strings.HasPrefix(rest, "{") {
		return
	}
	for _, item := range splitOutside(rest[1:], ',') {
		lead := leadingSpace(item.text)
		collectKeys(item.text[lead:], full, func(path []string, o int) {
			add(path, off+1+item.start+lead+o)
		})
	}
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
