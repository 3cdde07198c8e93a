package machine

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// Problem is one thing wrong with a machine description: the file, a
// position (for JSON syntax) or the key path (for values), what is wrong and,
// where it can be guessed, how to fix it. Its Error text is what the operator
// reads. It has the shape of the pipeline's plan.Problem, which this package
// may not import; the command line turns one into the other.
type Problem struct {
	File string // the file as given on the command line
	Line int    // 1-based; 0 when the problem is about a value, not syntax
	Col  int    // 1-based; 0 when unknown
	Key  string // key path, e.g. "firmware.mode" or "disks[0].by_id[1]"
	Msg  string // what is wrong, lowercase, no final period
	Hint string // how to fix it, when that can be guessed
}

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
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Problems is every problem found in one machine description.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// readErrorText says why a file could not be read, without repeating its name.
func readErrorText(err error) string {
	switch {
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
