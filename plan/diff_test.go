package plan_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nixplan/nixplan/plan"
)

// numberedLines makes a text of numbered lines: numberedLines(1, 3) is "l1\nl2\nl3\n".
func numberedLines(from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		fmt.Fprintf(&b, "l%d\n", i)
	}
	return b.String()
}

var diffCases = []struct {
	name     string
	old, new string
	want     string // after the --- and +++ lines
}{
	{"equal", numberedLines(1, 5), numberedLines(1, 5), ""},
	{"one line changed", numberedLines(1, 10), strings.Replace(numberedLines(1, 10), "l5\n", "five\n", 1), `@@ -2,7 +2,7 @@
 l2
 l3
 l4
-l5
+five
 l6
 l7
 l8
`},
	{"insert at start", numberedLines(1, 5), "l0\n" + numberedLines(1, 5), `@@ -1,3 +1,4 @@
+l0
 l1
 l2
 l3
`},
	{"delete last line", numberedLines(1, 5), numberedLines(1, 4), `@@ -2,4 +2,3 @@
 l2
 l3
 l4
-l5
`},
	{"old empty", "", "a\nb\n", `@@ -0,0 +1,2 @@
+a
+b
`},
	{"new empty", "a\nb\n", "", `@@ -1,2 +0,0 @@
-a
-b
`},
	{"newline added at end", "a\nb", "a\nb\n", `@@ -1,2 +1,2 @@
 a
-b
\ No newline at end of file
+b
`},
	{"last line without newline changed", "a\nb\nc", "a\nb\nd", `@@ -1,3 +1,3 @@
 a
 b
-c
\ No newline at end of file
+d
\ No newline at end of file
`},
	{"changes six lines apart get hunks that meet", numberedLines(1, 20),
		strings.NewReplacer("l4\n", "four\n", "l11\n", "eleven\n").Replace(numberedLines(1, 20)), `@@ -1,7 +1,7 @@
 l1
 l2
 l3
-l4
+four
 l5
 l6
 l7
@@ -8,7 +8,7 @@
 l8
 l9
 l10
-l11
+eleven
 l12
 l13
 l14
`},
	{"changes seven lines apart get two hunks", numberedLines(1, 20),
		strings.NewReplacer("l4\n", "four\n", "l12\n", "twelve\n").Replace(numberedLines(1, 20)), `@@ -1,7 +1,7 @@
 l1
 l2
 l3
-l4
+four
 l5
 l6
 l7
@@ -9,7 +9,7 @@
 l9
 l10
 l11
-l12
+twelve
 l13
 l14
 l15
`},
	{"deletions come before insertions", "a\nb\nc\nd\n", "a\nx\ny\nd\n", `@@ -1,4 +1,4 @@
 a
-b
-c
+x
+y
 d
`},
}

func TestUnifiedDiff(t *testing.T) {
	for _, tc := range diffCases {
		t.Run(tc.name, func(t *testing.T) {
			got := plan.UnifiedDiff("a/f", []byte(tc.old), "b/f", []byte(tc.new))
			if tc.want == "" {
				if got != nil {
					t.Fatalf("equal texts gave a diff:\n%s", got)
				}
				return
			}
			want := "--- a/f\n+++ b/f\n" + tc.want
			if diff := cmp.Diff(want, string(got)); diff != "" {
				t.Errorf("UnifiedDiff (-want +got):\n%s", diff)
			}
		})
	}
}

// TestUnifiedDiffAppliesWithPatch has GNU patch apply each diff of the
// cases above and of edits of a rendered bundle to the old text: it must
// accept the diff and give the new text.
func TestUnifiedDiffAppliesWithPatch(t *testing.T) {
	patch := needTool(t, "patch", "patch")
	type pair struct{ name, old, new string }
	var pairs []pair
	for _, tc := range diffCases {
		pairs = append(pairs, pair{tc.name, tc.old, tc.new})
	}
	b := diffTestBundle(t)
	for _, f := range b.Files {
		text := string(f.Data)
		ls := strings.SplitAfter(text, "\n")
		pairs = append(pairs,
			pair{f.Name + " line changed", text, strings.Join(ls[:len(ls)/2], "") + "# edited\n" + strings.Join(ls[len(ls)/2+1:], "")},
			pair{f.Name + " line removed", text, strings.Join(ls[:len(ls)/3], "") + strings.Join(ls[len(ls)/3+1:], "")},
			pair{f.Name + " byte changed", text, strings.Replace(text, "e", "E", 1)},
			pair{f.Name + " without its last newline", text, strings.TrimSuffix(text, "\n")},
			pair{f.Name + " replaced by another file", text, string(b.Files[(len(f.Name))%len(b.Files)].Data) + "other\n"},
		)
	}
	dir := t.TempDir()
	for _, p := range pairs {
		d := plan.UnifiedDiff("a/f", []byte(p.old), "b/f", []byte(p.new))
		if p.old == p.new {
			continue
		}
		oldFile, outFile := filepath.Join(dir, "old"), filepath.Join(dir, "out")
		if err := os.WriteFile(oldFile, []byte(p.old), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(patch, "--quiet", "--force", "-o", outFile, oldFile)
		cmd.Stdin = bytes.NewReader(d)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("%s: patch: %v\n%s\ndiff:\n%s", p.name, err, out, d)
			continue
		}
		got, err := os.ReadFile(outFile)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != p.new {
			t.Errorf("%s: patch gives other text than the new one\ndiff:\n%s", p.name, d)
		}
	}
}

// TestUnifiedDiffRandom checks on random texts that the diff applies: its
// context and removed lines are the old text's, its counts right, and the
// result the new text.
func TestUnifiedDiffRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	text := func() string {
		var b strings.Builder
		for range r.IntN(40) {
			b.WriteString(strconv.Itoa(r.IntN(6)) + "\n")
		}
		if r.IntN(4) == 0 {
			b.WriteString("end") // no final newline
		}
		return b.String()
	}
	for i := range 2000 {
		old, new := text(), text()
		d := plan.UnifiedDiff("a", []byte(old), "b", []byte(new))
		if old == new {
			if d != nil {
				t.Fatalf("case %d: equal texts gave a diff", i)
			}
			continue
		}
		got, changed, err := diffApply(old, d)
		if err != nil {
			t.Fatalf("case %d: %v\nold %q\nnew %q\ndiff:\n%s", i, err, old, new, d)
		}
		if got != new {
			t.Fatalf("case %d: the diff applied gives %q, want %q\ndiff:\n%s", i, got, new, d)
		}
		if changed == 0 {
			t.Fatalf("case %d: a diff of different texts changes nothing", i)
		}
	}
}

func diffTrimEmpty(ls []string) []string {
	if len(ls) > 0 && ls[len(ls)-1] == "" {
		return ls[:len(ls)-1]
	}
	return ls
}

// diffApply applies a unified diff to old, checking every context and
// removed line and every hunk header's counts; changed counts + and - lines.
func diffApply(old string, diff []byte) (string, int, error) {
	oldLines := diffTrimEmpty(strings.SplitAfter(old, "\n"))
	ls := strings.SplitAfter(string(diff), "\n")
	if len(ls) < 3 || ls[0] != "--- a\n" || ls[1] != "+++ b\n" {
		return "", 0, fmt.Errorf("bad headers")
	}
	var out strings.Builder
	at, changed := 0, 0
	ls = diffTrimEmpty(ls[2:])
	for i := 0; i < len(ls); {
		var os, oc, ns, nc int
		h := strings.TrimSuffix(ls[i], "\n")
		if _, err := fmt.Sscanf(h, "@@ -%s +%s @@", new(string), new(string)); err != nil {
			return "", 0, fmt.Errorf("line %q is not a hunk header", h)
		}
		f := strings.Fields(h)
		os, oc = diffParseRange(f[1][1:])
		ns, nc = diffParseRange(f[2][1:])
		start := os - 1
		if oc == 0 {
			start = os
		}
		if start < at {
			return "", 0, fmt.Errorf("hunks overlap")
		}
		for ; at < start; at++ {
			out.WriteString(oldLines[at])
		}
		if ns < 0 {
			return "", 0, fmt.Errorf("bad new start")
		}
		i++
		seenOld, seenNew := 0, 0
		for i < len(ls) && !strings.HasPrefix(ls[i], "@@") {
			l := ls[i]
			body := l[1:]
			if i+1 < len(ls) && ls[i+1] == "\\ No newline at end of file\n" {
				body = strings.TrimSuffix(body, "\n")
				i++
			}
			switch l[0] {
			case ' ', '-':
				if at >= len(oldLines) || oldLines[at] != body {
					return "", 0, fmt.Errorf("line %d of old is %q, the diff says %q", at+1, oldLines[at], body)
				}
				at++
				seenOld++
				if l[0] == ' ' {
					out.WriteString(body)
					seenNew++
				} else {
					changed++
				}
			case '+':
				out.WriteString(body)
				seenNew++
				changed++
			default:
				return "", 0, fmt.Errorf("bad line %q", l)
			}
			i++
		}
		if seenOld != oc || seenNew != nc {
			return "", 0, fmt.Errorf("hunk %q holds %d old and %d new lines", h, seenOld, seenNew)
		}
	}
	for ; at < len(oldLines); at++ {
		out.WriteString(oldLines[at])
	}
	return out.String(), changed, nil
}

func diffParseRange(s string) (start, count int) {
	a, b, ok := strings.Cut(s, ",")
	start, _ = strconv.Atoi(a)
	if !ok {
		return start, 1
	}
	count, _ = strconv.Atoi(b)
	return start, count
}

func diffTestBundle(t testing.TB) *plan.Bundle {
	t.Helper()
	spec, err := plan.Load("../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	p, ps := plan.Validate(spec)
	if p == nil {
		t.Fatal(ps)
	}
	b, err := plan.Render(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCompareBundle(t *testing.T) {
	b := diffTestBundle(t)
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := plan.Write(b, dir); err != nil {
		t.Fatal(err)
	}
	drift, err := plan.CompareBundle(b, dir, "bundle", "rendered")
	if err != nil || len(drift) != 0 {
		t.Fatalf("a fresh bundle: drift %v, err %v", drift, err)
	}

	config := filepath.Join(dir, plan.ConfigurationFile)
	data, _ := os.ReadFile(config)
	data[len(data)/2] ^= 1 // one byte
	if err := os.WriteFile(config, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, plan.ChecklistFile)); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, plan.KexecInstallFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	drift, err = plan.CompareBundle(b, dir, "bundle", "rendered")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range drift {
		got = append(got, fmt.Sprintf("%s %d", d.Name, d.Kind))
		if d.Kind == plan.FileChanged && !bytes.HasPrefix(d.Diff, []byte("--- bundle/configuration.nix\n+++ rendered/configuration.nix\n@@ ")) {
			t.Errorf("diff of %s:\n%s", d.Name, d.Diff)
		}
	}
	want := []string{
		fmt.Sprintf("%s %d", plan.ChecklistFile, plan.FileMissing),
		fmt.Sprintf("%s %d", plan.ConfigurationFile, plan.FileChanged),
		fmt.Sprintf("%s %d", plan.KexecInstallFile, plan.FileModeChanged),
		fmt.Sprintf("%s %d", "notes.txt", plan.FileExtra),
		fmt.Sprintf("%s %d", "old/", plan.FileExtra),
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("drift (-want +got):\n%s", d)
	}

	if _, err := plan.CompareBundle(b, filepath.Join(dir, "nosuch"), "x", "y"); err == nil || !strings.HasSuffix(err.Error(), "nosuch: no such folder") {
		t.Errorf("a missing folder: err %v", err)
	}
}
