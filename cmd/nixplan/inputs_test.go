package main

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// runCLI runs nixplan with stdin, a terminal check and --quiet as given.
func runCLI(t *testing.T, stdin string, terminal bool, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb strings.Builder
	c := &cli{stdout: &out, stderr: &errb, stdin: strings.NewReader(stdin),
		isTerminal: func(io.Writer) bool { return terminal }}
	code = c.run(args)
	return code, out.String(), errb.String()
}

// tree reads every file under dir: its path, mode and contents.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		files[rel] = fi.Mode().String() + "\n" + string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestFleetInputsRenderOneTree renders one fleet from arguments, from its
// folder, from a list file, from a list on standard input and in batches of
// one and the rest (as xargs splits a fleet): every tree is the same, DIR/HOST
// for each host. diff over the folder then finds no drift, and after a
// one-byte change exactly one drifted host.
func TestFleetInputsRenderOneTree(t *testing.T) {
	dir := t.TempDir()
	specs := writeFleet(t, dir, 12)
	t.Chdir(dir)
	for i := range specs {
		specs[i], _ = filepath.Rel(dir, specs[i])
	}
	list := strings.Join(specs, "\n") + "\n"
	if err := os.WriteFile("list.txt", []byte(list), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("first.txt", []byte(specs[0]+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun := func(stdin string, args ...string) string {
		t.Helper()
		code, stdout, stderr := runCLI(t, stdin, false, args...)
		if code != exitOK {
			t.Fatalf("nixplan %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
		}
		return stdout
	}
	mustRun("", append(append([]string{"render"}, specs...), "-o", "args")...)
	mustRun("", "render", "hosts", "-o", "folder")
	mustRun("", "render", "--from", "list.txt", "-o", "list")
	mustRun(list, "render", "--from", "-", "-o", "stdin")
	// Batches: a list of one spec, a single spec with --fleet, then the rest.
	mustRun("", "render", "--from", "first.txt", "-o", "batches")
	mustRun("", "render", "--fleet", specs[1], "-o", "batches")
	mustRun("", append(append([]string{"render"}, specs[2:]...), "-o", "batches")...)

	want := tree(t, "args")
	perHost := 0 // a bundle's files, as many for every host
	for name := range want {
		if strings.HasPrefix(name, "web0000/") {
			perHost++
		}
	}
	if perHost < 6 || len(want) != 12*perHost || want["web0003/SHA256SUMS"] == "" {
		t.Fatalf("render of 12 specs as arguments wrote %d files, %d in web0000/; want the same number in each of web0000/ to web0011/", len(want), perHost)
	}
	for _, out := range []string{"folder", "list", "stdin", "batches"} {
		if d := cmp.Diff(want, tree(t, out)); d != "" {
			t.Errorf("%s differs from the render of the same specs given as arguments (-args +%s):\n%s", out, out, d)
		}
	}

	// diff over the folder, and over a list, finds the fleet up to date.
	for _, args := range [][]string{{"diff", "hosts", "batches"}, {"diff", "--from", "list.txt", "batches"}} {
		if code, _, stderr := runCLI(t, "", false, args...); code != exitOK {
			t.Fatalf("nixplan %s after render: exit %d, want 0\n%s", strings.Join(args, " "), code, stderr)
		}
	}
	// A batch of one spec with --fleet finds its host up to date, too.
	if code, _, stderr := runCLI(t, "", false, "diff", "--fleet", specs[0], "folder"); code == exitTrouble {
		t.Fatalf("diff --fleet of one spec: exit %d\n%s", code, stderr)
	}

	// One byte changed in one host: one drifted file, that host's, and nothing else.
	conf := filepath.Join("folder", "web0007", "configuration.nix")
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	data[bytes.LastIndexByte(data, '}')] = ')'
	if err := os.WriteFile(conf, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI(t, "", false, "diff", "hosts", "folder")
	if code != exitProblem {
		t.Fatalf("diff after a one-byte change: exit %d, want 1\n%s", code, stderr)
	}
	errs := regexp.MustCompile(`(?m)^nixplan: error: .*$`).FindAllString(stderr, -1)
	if want := []string{"nixplan: error: folder/web0007/configuration.nix: differs from what hosts/web0007.toml renders"}; !cmp.Equal(errs, want) {
		t.Errorf("diff after a one-byte change in web0007 reported:\n%s\nwant only:\n%s", strings.Join(errs, "\n"), want[0])
	}
	if n := strings.Count(stdout, "is up to date\n"); n != 11 {
		t.Errorf("diff after a one-byte change: %d hosts up to date, want 11\n%s", n, stdout)
	}
}

// TestProgressOnlyOnTerminal renders a fleet with standard error taken for
// a terminal: a progress line with count, rate and time left is drawn and
// then erased; standard output and the files are the same as without it;
// --quiet, and an error stream that is no terminal, show none.
func TestProgressOnlyOnTerminal(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = time.Millisecond
	dir := t.TempDir()
	writeFleet(t, dir, 30)
	t.Chdir(dir)

	code, termOut, termErr := runCLI(t, "", true, "render", "hosts", "-o", "term")
	if code != exitOK {
		t.Fatalf("render: exit %d\n%s", code, termErr)
	}
	line := regexp.MustCompile(`\rnixplan: \d+ of 30 specs(, \d+ a second, about (\d+m)?\d+s left)?\x1b\[K`)
	if !regexp.MustCompile(`\rnixplan: \d+ of 30 specs, \d+ a second, about \d+s left\x1b\[K`).MatchString(termErr) {
		t.Errorf("no progress line on a terminal; stderr:\n%q", termErr)
	}
	code, quietOut, quietErr := runCLI(t, "", true, "render", "--quiet", "hosts", "-o", "quiet")
	if code != exitOK || strings.Contains(quietErr, "\r") {
		t.Errorf("render --quiet on a terminal: exit %d, stderr %q, want 0 and no progress", code, quietErr)
	}
	code, pipeOut, pipeErr := runCLI(t, "", false, "render", "hosts", "-o", "pipe")
	if code != exitOK || pipeErr != quietErr {
		t.Errorf("render off a terminal: exit %d, stderr %q, want 0 and what --quiet prints", code, pipeErr)
	}
	// The line is erased before the warnings, which follow as without it.
	end := strings.LastIndex(termErr, "\r\x1b[K")
	if end < 0 || line.ReplaceAllString(termErr[:end], "") != "" || termErr[end+len("\r\x1b[K"):] != quietErr {
		t.Errorf("stderr on a terminal is not progress lines, one erase, then what --quiet prints:\n%q", termErr[:min(len(termErr), 2000)])
	}
	same := func(s string) string {
		return regexp.MustCompile(`to (term|quiet|pipe)/`).ReplaceAllString(s, "to OUT/")
	}
	if same(termOut) != same(quietOut) || same(termOut) != same(pipeOut) {
		t.Errorf("stdout differs with progress:\n%s\nwithout:\n%s", termOut, quietOut)
	}
	if d := cmp.Diff(tree(t, "quiet"), tree(t, "term")); d != "" {
		t.Errorf("files differ with progress:\n%s", d)
	}
	// diff and check show it too, and --quiet silences them.
	if _, _, stderr := runCLI(t, "", true, "diff", "hosts", "term"); !line.MatchString(stderr) {
		t.Errorf("no progress line for diff on a terminal: %q", stderr)
	}
	if _, _, stderr := runCLI(t, "", true, "check", "-q", "hosts"); strings.Contains(stderr, "\r") {
		t.Errorf("check -q on a terminal: stderr %q, want no progress", stderr)
	}
}
