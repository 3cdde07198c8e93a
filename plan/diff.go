package plan

import (
	"bytes"
	"fmt"
	"strings"
)

// diffContext is how many unchanged lines a hunk shows around a change, as
// diff -u does by default.
const diffContext = 3

// UnifiedDiff returns the differences between two texts in the format of
// diff -u (three lines of context, "\ No newline at end of file" where a
// text ends without one), with oldName and newName in the --- and +++
// headers, or nil when the texts are equal. The diff is a shortest one
// (Myers' algorithm); within a run of changes, removed lines come first.
func UnifiedDiff(oldName string, old []byte, newName string, new []byte) []byte {
	if bytes.Equal(old, new) {
		return nil
	}
	ops := lineEdits(splitLines(old), splitLines(new))
	var out bytes.Buffer
	fmt.Fprintf(&out, "--- %s\n+++ %s\n", oldName, newName)
	// oldAt[i] and newAt[i] are how many old and new lines come before ops[i].
	oldAt, newAt := make([]int, len(ops)+1), make([]int, len(ops)+1)
	for i, op := range ops {
		oldAt[i+1], newAt[i+1] = oldAt[i], newAt[i]
		if op.kind != insertLine {
			oldAt[i+1]++
		}
		if op.kind != deleteLine {
			newAt[i+1]++
		}
	}
	for i := 0; i < len(ops); {
		if ops[i].kind == equalLine {
			i++
			continue
		}
		// A hunk runs from this change to the last change that follows
		// within 2*diffContext unchanged lines of the one before it.
		last := i
		for j := i + 1; j < len(ops) && j-last <= 2*diffContext+1; j++ {
			if ops[j].kind != equalLine {
				last = j
			}
		}
		start, end := max(0, i-diffContext), min(len(ops), last+1+diffContext)
		fmt.Fprintf(&out, "@@ -%s +%s @@\n",
			hunkRange(oldAt[start], oldAt[end]-oldAt[start]), hunkRange(newAt[start], newAt[end]-newAt[start]))
		for _, op := range ops[start:end] {
			out.WriteByte(" -+"[op.kind])
			out.WriteString(op.line)
			if !strings.HasSuffix(op.line, "\n") {
				out.WriteString("\n\\ No newline at end of file\n")
			}
		}
		i = end
	}
	return out.Bytes()
}

// hunkRange is one side of a hunk header: the first line (1-based) and the
// count, the count left out when it is 1; an empty side names the line
// before it, as diff -u does.
func hunkRange(before, count int) string {
	switch count {
	case 0:
		return fmt.Sprintf("%d,0", before)
	case 1:
		return fmt.Sprintf("%d", before+1)
	}
	return fmt.Sprintf("%d,%d", before+1, count)
}

// splitLines splits text after each newline; a last line without one is
// kept as it is, so that "a" and "a\n" are different lines.
func splitLines(text []byte) []string {
	var lines []string
	for len(text) > 0 {
		i := bytes.IndexByte(text, '\n') + 1
		if i == 0 {
			i = len(text)
		}
		lines = append(lines, string(text[:i]))
		text = text[i:]
	}
	return lines
}

type editKind uint8

const (
	equalLine editKind = iota
	deleteLine
	insertLine
)

type lineEdit struct {
	kind editKind
	line string
}

// lineEdits returns a shortest edit script from a to b.
func lineEdits(a, b []string) []lineEdit {
	// Common ends are cheap to take off, and most drift is a few lines.
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		suf++
	}
	ops := make([]lineEdit, 0, len(a)+len(b))
	for _, l := range a[:pre] {
		ops = append(ops, lineEdit{equalLine, l})
	}
	ops = append(ops, myers(a[pre:len(a)-suf], b[pre:len(b)-suf])...)
	for _, l := range a[len(a)-suf:] {
		ops = append(ops, lineEdit{equalLine, l})
	}
	return ops
}

// myers is Myers' O(ND) shortest edit script ("An O(ND) Difference Algorithm
// and Its Variations", 1986), keeping each round's furthest points to walk
// back. Within each run of changes, deletions are put before insertions.
func myers(a, b []string) []lineEdit {
	// Compare lines as numbers.
	ids := map[string]int{}
	id := func(lines []string) []int {
		out := make([]int, len(lines))
		for i, l := range lines {
			n, ok := ids[l]
			if !ok {
				n = len(ids)
				ids[l] = n
			}
			out[i] = n
		}
		return out
	}
	x0, y0 := id(a), id(b)
	n, m := len(a), len(b)
	// v[off+k] is the furthest x reached on diagonal k = x-y.
	off := n + m + 1
	v := make([]int, 2*off+1)
	// trace[d] is v after round d-1 on diagonals -(d-1)..d-1.
	var trace [][]int
	d := 0
search:
	for ; d <= n+m; d++ {
		if d > 0 {
			trace = append(trace, append([]int(nil), v[off-(d-1):off+d]...))
		} else {
			trace = append(trace, nil)
		}
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1] // down: insert b[y-1]
			} else {
				x = v[off+k-1] + 1 // right: delete a[x-1]
			}
			y := x - k
			for x < n && y < m && x0[x] == y0[y] {
				x, y = x+1, y+1
			}
			v[off+k] = x
			if x >= n && y >= m {
				break search
			}
		}
	}
	// Walk back from (n, m), collecting the script in reverse.
	var rev []lineEdit
	x, y := n, m
	for ; d > 0; d-- {
		prev := trace[d] // prev[i] is diagonal i-(d-1)
		at := func(k int) int { return prev[k+d-1] }
		k := x - y
		var pk int
		if k == -d || (k != d && at(k-1) < at(k+1)) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := at(pk)
		py := px - pk
		// The round's step went from (px, py) to (mx, my), its snake on to (x, y).
		mx, my := px+1, py
		if pk == k+1 {
			mx, my = px, py+1
		}
		for x > mx && y > my {
			x, y = x-1, y-1
			rev = append(rev, lineEdit{equalLine, a[x]})
		}
		if pk == k+1 {
			rev = append(rev, lineEdit{insertLine, b[py]})
		} else {
			rev = append(rev, lineEdit{deleteLine, a[px]})
		}
		x, y = px, py
	}
	for x > 0 {
		x, y = x-1, y-1
		rev = append(rev, lineEdit{equalLine, a[x]})
	}
	ops := make([]lineEdit, 0, len(rev))
	for i := len(rev) - 1; i >= 0; i-- {
		ops = append(ops, rev[i])
	}
	// Deletions before insertions within each run of changes.
	for i := 0; i < len(ops); {
		if ops[i].kind == equalLine {
			i++
			continue
		}
		j := i
		var dels, inss []lineEdit
		for ; j < len(ops) && ops[j].kind != equalLine; j++ {
			if ops[j].kind == deleteLine {
				dels = append(dels, ops[j])
			} else {
				inss = append(inss, ops[j])
			}
		}
		copy(ops[i:], dels)
		copy(ops[i+len(dels):], inss)
		i = j
	}
	return ops
}
