package plan

import (
	"bytes"

	"github.com/rogpeppe/go-internal/diff"
)

// UnifiedDiff returns the differences between two texts in the format of
// diff -u, with oldName and newName in the --- and +++ headers, or nil when
// the texts are equal. It is go-internal's anchored diff (the one the Go
// command uses): it matches the lines that occur once in both texts and so
// takes O(n log n) time and linear memory for any input, where a shortest
// diff (Myers') needs memory quadratic in the number of changes; its hunks
// are valid input to patch(1) and git apply, three lines of context, with
// "\ No newline at end of file" where a text ends without one.
func UnifiedDiff(oldName string, old []byte, newName string, new []byte) []byte {
	d := diff.Diff(oldName, old, newName, new)
	if d == nil {
		return nil
	}
	// Drop the "diff OLD NEW" line diff.Diff starts with: a unified diff
	// starts at its --- header.
	if i := bytes.IndexByte(d, '\n'); i >= 0 && bytes.HasPrefix(d, []byte("diff ")) {
		d = d[i+1:]
	}
	return d
}
