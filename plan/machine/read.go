package machine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxBytes caps a machine description: facts.sh prints a few KB for a
// server, and a thousand disks would still fit.
const MaxBytes = 16 << 20

// readFile reads the regular file at path, of at most MaxBytes, refusing a
// FIFO, a device or a folder before reading (a FIFO would block, /dev/zero
// never ends). Package plan's ReadRegular does the same for specs; this
// package imports nothing from the project.
func readFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("is %s, not a regular file", kind(fi.Mode()))
	}
	if fi.Size() > MaxBytes {
		return nil, fmt.Errorf("is %d bytes, more than the %d MiB nixplan reads here", fi.Size(), MaxBytes>>20)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("is %s, not a regular file", kind(fi.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err == nil && len(data) > MaxBytes {
		err = fmt.Errorf("grew past the %d MiB nixplan reads here", MaxBytes>>20)
	}
	return data, err
}

func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// keyProblem finds, before the description is decoded, a key that
// encoding/json would take without it being right: one given twice in an
// object (the last would win) and one that matches a key of the format only
// when case is ignored ("RAM_BYTES" would fill ram_bytes). It walks the JSON
// with the shape of Machine and leaves syntax and unknown keys to Decode.
func keyProblem(name string, data []byte) *Problem {
	dec := json.NewDecoder(bytes.NewReader(data))
	var problem *Problem
	var walk func(t reflect.Type, path string, depth int) bool
	walk = func(t reflect.Type, path string, depth int) bool {
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		tok, err := dec.Token()
		if err != nil || depth > 64 {
			return false
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return false
				}
				key, _ := kt.(string)
				at := path + key
				keyAt := dec.InputOffset() - int64(len(key)+2) // its opening quote, if it has no escapes
				if seen[key] {
					line, col := lineCol(data, keyAt)
					problem = &Problem{File: name, Line: line, Col: col, Key: at, Msg: "is given twice in one object; the second would silently win",
						Hint: "facts.sh gives each key once: collect the facts again rather than edit them"}
					return false
				}
				seen[key] = true
				var field reflect.Type
				if t != nil && t.Kind() == reflect.Struct {
					for i := 0; i < t.NumField(); i++ {
						tag, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
						switch {
						case tag == key:
							field = t.Field(i).Type
						case strings.EqualFold(tag, key) && tag != "-":
							line, col := lineCol(data, keyAt)
							problem = &Problem{File: name, Line: line, Col: col, Key: at,
								Msg:  fmt.Sprintf("is not a key of the format; its keys are lowercase: %q", tag),
								Hint: fmt.Sprintf(`write "%s": as facts.sh does`, tag)}
							return false
						}
					}
				} else if t != nil && t.Kind() == reflect.Map {
					field = t.Elem()
				}
				if !walk(field, at+".", depth+1) {
					return false
				}
			}
			_, err = dec.Token()
			return err == nil
		case json.Delim('['):
			var elem reflect.Type
			if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
				elem = t.Elem()
			}
			for i := 0; dec.More(); i++ {
				if !walk(elem, strings.TrimSuffix(path, ".")+"["+strconv.Itoa(i)+"].", depth+1) {
					return false
				}
			}
			_, err = dec.Token()
			return err == nil
		}
		return true
	}
	walk(reflect.TypeOf(Machine{}), "", 0)
	if problem != nil {
		problem.Key = strings.TrimSuffix(problem.Key, ".")
	}
	return problem
}

// maxShown is how much of a value a message quotes.
const maxShown = 160

// quoted is s quoted for a message, cut after maxShown bytes with its length.
func quoted(s string) string {
	if len(s) <= maxShown {
		return strconv.Quote(s)
	}
	cut := maxShown
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}
