package plan_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// twoBundles renders the example and the example with another nameserver.
func twoBundles(t *testing.T) (a, b *plan.Bundle) {
	t.Helper()
	_, a = renderText(t, "host.toml", exampleSpec(t))
	_, b = renderText(t, "host.toml", exampleSpec(t, `"8.8.8.8"`, `"8.8.4.4"`))
	return a, b
}

// folder returns the names in dir, sorted.
func folder(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// holds reports whether dir holds exactly bundle b.
func holds(t *testing.T, dir string, b *plan.Bundle) bool {
	t.Helper()
	drift, err := plan.CompareBundle(b, dir, "a", "b")
	return err == nil && len(drift) == 0
}

func TestWriteReplacesABundle(t *testing.T) {
	for _, exchange := range []bool{true, false} {
		parent := t.TempDir()
		if !exchange {
			plan.WithoutExchange(t)
		}
		a, b := twoBundles(t)
		dir := filepath.Join(parent, "bundle")
		for _, bundle := range []*plan.Bundle{a, b, a} {
			if err := plan.Write(bundle, dir); err != nil {
				t.Fatal(err)
			}
			if !holds(t, dir, bundle) {
				t.Fatalf("exchange %v: the folder does not hold the bundle written", exchange)
			}
			if got := folder(t, parent); !slices.Equal(got, []string{"bundle"}) {
				t.Errorf("exchange %v: beside the bundle: %v", exchange, got)
			}
		}
	}
}

// TestWriteRecoversFromAKill sets up what a Write killed at each step
// leaves, and requires the next Write to put the new bundle in place and
// leave nothing else.
func TestWriteRecoversFromAKill(t *testing.T) {
	a, b := twoBundles(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, dir, newDir, oldDir string)
	}{
		{"killed while writing the new folder", func(t *testing.T, dir, newDir, oldDir string) {
			write(t, a, dir)
			os.Mkdir(newDir, 0o755)
			os.WriteFile(filepath.Join(newDir, plan.ConfigurationFile), []byte("# half"), 0o644)
		}},
		{"killed after the exchange", func(t *testing.T, dir, newDir, oldDir string) {
			write(t, b, dir)
			write(t, a, newDir)
		}},
		{"killed between the fallback's renames", func(t *testing.T, dir, newDir, oldDir string) {
			write(t, a, oldDir)
			write(t, b, newDir)
		}},
		{"killed after the fallback's renames", func(t *testing.T, dir, newDir, oldDir string) {
			write(t, b, dir)
			write(t, a, oldDir)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "bundle")
			tc.setup(t, dir, filepath.Join(parent, ".bundle.nixplan-new"), filepath.Join(parent, ".bundle.nixplan-old"))
			if err := plan.Write(b, dir); err != nil {
				t.Fatal(err)
			}
			if !holds(t, dir, b) {
				t.Error("the folder does not hold the bundle written")
			}
			if got := folder(t, parent); !slices.Equal(got, []string{"bundle"}) {
				t.Errorf("beside the bundle: %v", got)
			}
		})
	}
}

// TestWriteRestoresTheOldBundle: where a fallback Write was killed between
// moving the old bundle aside and moving the new one in, the next Write puts
// the old bundle back first; when that Write then fails, the old bundle is
// in its place and nothing is left beside it.
func TestWriteRestoresTheOldBundle(t *testing.T) {
	a, _ := twoBundles(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "bundle")
	write(t, a, filepath.Join(parent, ".bundle.nixplan-old"))
	// A file where the next one needs a folder: the write fails midway.
	unwritable := &plan.Bundle{Files: []plan.File{{Name: "clash", Data: []byte("x"), Mode: 0o644}, {Name: "clash/inner", Data: []byte("x"), Mode: 0o644}}}
	if err := plan.Write(unwritable, dir); err == nil {
		t.Fatal("Write of a file into a file succeeded")
	}
	if !holds(t, dir, a) {
		t.Error("the old bundle is not back in its place")
	}
	if got := folder(t, parent); !slices.Equal(got, []string{"bundle"}) {
		t.Errorf("beside the bundle: %v", got)
	}
}

func write(t *testing.T, b *plan.Bundle, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range b.Files {
		if err := os.WriteFile(filepath.Join(dir, f.Name), f.Data, os.FileMode(f.Mode)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestWriteRefusesTheCurrentFolder: "-o ." cannot be replaced as a whole,
// nor can a folder that holds the current one; nothing is written.
func TestWriteRefusesTheCurrentFolder(t *testing.T) {
	a, _ := twoBundles(t)
	parent := t.TempDir()
	inner := filepath.Join(parent, "bundle")
	write(t, a, inner)
	t.Chdir(inner)
	for _, dir := range []string{".", "..", inner, parent} {
		err := plan.Write(a, dir)
		if err == nil || !strings.Contains(err.Error(), "is the current folder or holds it; nixplan replaces a bundle folder as a whole: give a folder inside it, e.g. -o bundle") {
			t.Errorf("Write(%q) = %v", dir, err)
		}
	}
	if got := folder(t, parent); !slices.Equal(got, []string{"bundle"}) {
		t.Errorf("Write left %v", got)
	}
	if !holds(t, inner, a) {
		t.Error("the bundle changed")
	}
}

// TestWriteRefusesAMountPoint: rename(2) cannot move a mount point.
func TestWriteRefusesAMountPoint(t *testing.T) {
	err := plan.Replaceable("/proc")
	if err == nil || err.Error() != "/proc is a mount point, which nixplan cannot replace: give a folder inside it" {
		t.Errorf("Replaceable(/proc) = %v", err)
	}
}

// TestWriteOldBundleNotRemovable: an old bundle with an immutable file
// (chattr +i binds even root) is refused before anything is written, and
// is left whole.
func TestWriteOldBundleNotRemovable(t *testing.T) {
	chattr := needTool(t, "chattr", "e2fsprogs")
	a, b := twoBundles(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "bundle")
	if err := plan.Write(a, dir); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, plan.ChecklistFile)
	if out, err := exec.Command(chattr, "+i", locked).CombinedOutput(); err != nil {
		requireOrSkip(t, "chattr +i does not work here: "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { exec.Command(chattr, "-R", "-i", parent).Run() })
	err := plan.Write(b, dir)
	want := dir + " cannot be replaced: checklist.md is immutable or append-only (chattr +i or +a), so it cannot be removed"
	if err == nil || err.Error() != want {
		t.Errorf("Write = %v, want %s", err, want)
	}
	if !holds(t, dir, a) {
		t.Error("the old bundle is not whole")
	}
	if got := folder(t, parent); !slices.Equal(got, []string{"bundle"}) {
		t.Errorf("Write left %v", got)
	}
}
