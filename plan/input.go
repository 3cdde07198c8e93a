package plan

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// Every input nixplan reads is bounded, so that no file, however made, can
// hang it or fill its memory: only regular files are read (a FIFO would
// block, /dev/zero never ends), and each kind of input has a size cap.
const (
	// MaxSpecFileBytes caps one spec file, MaxSpecTreeBytes a spec with all
	// its includes. A spec is a few KB; a shared file with many keys tens.
	MaxSpecFileBytes = 256 << 10
	MaxSpecTreeBytes = 1 << 20
	// MaxIncludeFiles caps the distinct files of one spec tree and
	// MaxIncludeEdges its include entries, counted however often a file is
	// included. Each file is read and resolved once.
	MaxIncludeFiles = 32
	MaxIncludeEdges = 64
	// MaxKeyFileBytes caps a public key file (init --ssh-key).
	MaxKeyFileBytes = 64 << 10
	// MaxBundleFileBytes caps a file of a committed bundle that diff reads:
	// a rendered bundle's biggest file, kexec-install.sh, is tens of KB.
	MaxBundleFileBytes = 16 << 20
	// MaxTarballBytes caps a kexec tarball shipped in a bundle; nixos-images'
	// are a few hundred MB.
	MaxTarballBytes = 4 << 30
)

// NotRegularError says that a path is not a regular file (or a link to one).
type NotRegularError struct {
	Path   string
	Kind   string // "a named pipe (FIFO)", "a character device", …
	Target string // where a symbolic link leads, when it is one
}

func (e *NotRegularError) Error() string {
	if e.Target != "" {
		return fmt.Sprintf("links to %s, %s, not a regular file", e.Target, e.Kind)
	}
	return fmt.Sprintf("is %s, not a regular file", e.Kind)
}

// TooLargeError says that a file is over its cap.
type TooLargeError struct {
	Size  int64
	Max   int64
	Grown bool // the file grew past Max while it was read: Size is a lower bound
}

func (e *TooLargeError) Error() string {
	if e.Grown {
		return fmt.Sprintf("grew past the %s nixplan reads here", FormatBinary(e.Max))
	}
	return fmt.Sprintf("is %d bytes, more than the %s nixplan reads here", e.Size, FormatBinary(e.Max))
}

// ReadRegular reads the regular file at path, following symbolic links, if
// it holds at most max bytes. Anything else is refused before a byte is
// read: a FIFO, a device, a socket or a folder, or a file over the cap. The
// file is opened without blocking and checked again once open, so one
// swapped in meanwhile is refused too; a file that grows while it is read
// stops at max+1 bytes.
func ReadRegular(path string, max int64) ([]byte, error) {
	f, fi, err := openRegular(path, max)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := bytes.NewBuffer(make([]byte, 0, min(fi.Size(), max)+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(f, max+1)); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	if int64(len(data)) > max {
		return nil, &TooLargeError{Size: int64(len(data)), Max: max, Grown: true}
	}
	return data, nil
}

// openRegular opens the regular file at path, of at most max bytes, for
// reading; see ReadRegular.
func openRegular(path string, max int64) (*os.File, fs.FileInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, nil, err
	}
	if err := regular(path, fi); err != nil {
		return nil, nil, err
	}
	if fi.Size() > max {
		return nil, nil, &TooLargeError{Size: fi.Size(), Max: max}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|openNonblock, 0)
	if err != nil {
		return nil, nil, err
	}
	if fi, err = f.Stat(); err == nil {
		err = regular(path, fi)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

func regular(path string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	e := &NotRegularError{Path: path, Kind: fileKind(fi.Mode())}
	if li, err := os.Lstat(path); err == nil && li.Mode()&fs.ModeSymlink != 0 {
		if target, err := filepath.EvalSymlinks(path); err == nil {
			e.Target = target
		}
	}
	return e
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a folder"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	}
	return "not a regular file"
}

// FormatBinary prints a size cap in KiB or MiB.
func FormatBinary(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// readErrorText says why a file could not be read, without repeating its name.
func readErrorText(err error) string {
	var nr *NotRegularError
	var tl *TooLargeError
	switch {
	case errors.As(err, &nr), errors.As(err, &tl):
		return err.Error()
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// MaxKeyParts caps the parts of one dotted key or table header, and
// MaxNesting how deep inline tables and arrays nest. A spec's keys have at
// most 3 parts and nest 2 deep.
const (
	MaxKeyParts = 16
	MaxNesting  = 16
)

// tomlShape finds, before the TOML decoder sees the text, what would make
// the decoder slow: BurntSushi/toml v1.6.0 copies the whole key path for each
// part of a dotted key and each level of nesting, so its time and memory grow
// with the square of both (measured here: a dotted key of 5,000 parts took
// 1.4 s and 1 GB, 2,000 nested inline tables 0.4 s and 470 MB). It reads
// strings and comments as TOML does and returns the offset of the first key
// with more than MaxKeyParts parts or the first bracket nested deeper than
// MaxNesting, with what is wrong and how to write it.
func tomlShape(data []byte) (offset int, msg, hint string) {
	var stack []byte // the open [ and { of values
	inKey := true    // reading a key (or a table header) rather than a value
	keyStart, parts := 0, 1
	for i := 0; i < len(data); i++ {
		c := data[i]
		switch {
		case c == '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
			i-- // the newline is handled below
		case c == '"' || c == '\'':
			i = skipTOMLString(data, i) - 1
		case c == '\n':
			if len(stack) == 0 {
				inKey, keyStart, parts = true, i+1, 1
			}
		case inKey:
			switch c {
			case '.':
				if parts++; parts > MaxKeyParts {
					return keyStart, fmt.Sprintf("a key of more than %d parts; nixplan reads keys of at most %d", MaxKeyParts, MaxKeyParts),
						`a spec's keys have 1 to 3 parts, e.g. network.ipv4.address = "203.0.113.10" or [network.ipv4]`
				}
			case '=':
				inKey = false
			}
		case c == '[' || c == '{':
			if stack = append(stack, c); len(stack) > MaxNesting {
				return i, fmt.Sprintf("inline tables and arrays nest more than %d deep; nixplan reads at most %d levels", MaxNesting, MaxNesting),
					`a spec nests them at most 2 deep, e.g. datasets = [{ name = "root" }]`
			}
			if c == '{' {
				inKey, keyStart, parts = true, i+1, 1
			}
		case c == ']' || c == '}':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
		case c == ',' && len(stack) > 0 && stack[len(stack)-1] == '{':
			inKey, keyStart, parts = true, i+1, 1
		}
	}
	return -1, "", ""
}

// skipTOMLString returns the offset just past the string that starts at i:
// basic "…" with backslash escapes, literal '…', or their multi-line
// forms """…""" and ”'…”'. An unterminated string runs to the end (the
// decoder reports it).
func skipTOMLString(data []byte, i int) int {
	q := data[i]
	if i+2 < len(data) && data[i+1] == q && data[i+2] == q {
		end := bytes.Index(data[i+3:], []byte{q, q, q})
		for q == '"' && end >= 0 && escaped(data, i+3+end) {
			next := bytes.Index(data[i+3+end+1:], []byte{q, q, q})
			if next < 0 {
				end = -1
				break
			}
			end += 1 + next
		}
		if end < 0 {
			return len(data)
		}
		j := i + 3 + end + 3
		for j < len(data) && data[j] == q { // up to two quotes may end the content
			j++
		}
		return j
	}
	for j := i + 1; j < len(data); j++ {
		switch data[j] {
		case '\\':
			if q == '"' {
				j++
			}
		case q:
			return j + 1
		case '\n':
			return j // a single-line string cannot go on: the decoder says so
		}
	}
	return len(data)
}

// escaped reports whether the byte at i follows an odd run of backslashes.
func escaped(data []byte, i int) bool {
	n := 0
	for i-1-n >= 0 && data[i-1-n] == '\\' {
		n++
	}
	return n%2 == 1
}

// lineCol returns the 1-based line and column of a byte offset.
func lineCol(data []byte, offset int) (line, col int) {
	offset = min(max(offset, 0), len(data))
	before := data[:offset]
	return bytes.Count(before, []byte("\n")) + 1, offset - bytes.LastIndexByte(before, '\n')
}
