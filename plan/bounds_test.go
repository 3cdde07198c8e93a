package plan_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nixplan/nixplan/plan"
)

// hostileInput is one input built to hang nixplan or fill its memory: each
// must end in a clear error (or, for diff, a bounded result).
type hostileInput struct {
	name string
	// setup writes the input into dir and returns the spec to load.
	setup func(t testing.TB, dir string) string
	// want is in the error Load and Validate return, or in what run returns.
	want string
	// run, when set, takes the input instead of Load and Validate.
	run func(path string) (string, error)
}

func writeFile(t testing.TB, path, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// exampleWith is the seed's example spec with text added at the top.
func exampleWith(t testing.TB, top string) string {
	t.Helper()
	data, err := os.ReadFile("../examples/ovh-kimsufi.toml")
	if err != nil {
		t.Fatal(err)
	}
	return top + string(data)
}

var hostileInputs = []hostileInput{
	{"FIFO include", func(t testing.TB, dir string) string {
		if err := syscall.Mkfifo(filepath.Join(dir, "fifo.toml"), 0o644); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "host.toml"), exampleWith(t, `include = ["fifo.toml"]`+"\n"))
		return filepath.Join(dir, "host.toml")
	}, "fifo.toml: is a named pipe (FIFO), not a regular file", nil},
	{"FIFO spec", func(t testing.TB, dir string) string {
		if err := syscall.Mkfifo(filepath.Join(dir, "host.toml"), 0o644); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, "host.toml")
	}, "host.toml: is a named pipe (FIFO), not a regular file", nil},
	{"link to /dev/zero", func(t testing.TB, dir string) string {
		if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.toml")); err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, "zero.toml")
	}, "zero.toml: links to /dev/zero, a character device, not a regular file", nil},
	{"include of a link to /dev/zero", func(t testing.TB, dir string) string {
		if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.toml")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "host.toml"), exampleWith(t, `include = ["zero.toml"]`+"\n"))
		return filepath.Join(dir, "host.toml")
	}, "zero.toml: links to /dev/zero, a character device, not a regular file", nil},
	{"include fan-out, each file listed 12 times", func(t testing.TB, dir string) string {
		// 7 files of about 1.9 KB, each listing the next 12 times:
		// 12^6 paths through the tree.
		for i := 0; i < 7; i++ {
			var list []string
			for range 12 {
				list = append(list, fmt.Sprintf("%q", fmt.Sprintf("f%d.toml", i+1)))
			}
			text := "# " + strings.Repeat("x", 1800) + "\n"
			if i < 6 {
				text = "include = [" + strings.Join(list, ", ") + "]\n" + text
			}
			writeFile(t, filepath.Join(dir, fmt.Sprintf("f%d.toml", i)), text)
		}
		return filepath.Join(dir, "f0.toml")
	}, `f5.toml: include[1]: "f6.toml" is listed twice (as include[0] too)`, nil},
	{"include fan-out, 12 distinct files a level", func(t testing.TB, dir string) string {
		// 6 levels of 12 files, each including all 12 of the next level.
		for level := 5; level >= 0; level-- {
			for j := 0; j < 12; j++ {
				var list []string
				if level < 5 {
					for k := 0; k < 12; k++ {
						list = append(list, fmt.Sprintf(`"l%d-%d.toml"`, level+1, k))
					}
				}
				writeFile(t, filepath.Join(dir, fmt.Sprintf("l%d-%d.toml", level, j)), "include = ["+strings.Join(list, ", ")+"]\n")
			}
		}
		return filepath.Join(dir, "l0-0.toml")
	}, "l4-4.toml: include[8]: the spec tree has more than 64 include entries", nil},
	{"spec tree of 5 files of 250 KB", func(t testing.TB, dir string) string {
		pad := "# " + strings.Repeat("x", 250<<10) + "\n"
		var list []string
		for i := range 4 {
			name := fmt.Sprintf("part%d.toml", i)
			writeFile(t, filepath.Join(dir, name), pad)
			list = append(list, fmt.Sprintf("%q", name))
		}
		writeFile(t, filepath.Join(dir, "host.toml"), "include = ["+strings.Join(list, ", ")+"]\n"+pad)
		return filepath.Join(dir, "host.toml")
	}, "part3.toml: the spec and its includes hold more than 1 MiB together", nil},
	{"dotted key of 40,001 parts", func(t testing.TB, dir string) string {
		writeFile(t, filepath.Join(dir, "host.toml"), strings.Repeat("a.", 40000)+"a = 1\n")
		return filepath.Join(dir, "host.toml")
	}, "host.toml:1:1: a key of more than 16 parts; nixplan reads keys of at most 16", nil},
	{"table header of 40,001 parts", func(t testing.TB, dir string) string {
		writeFile(t, filepath.Join(dir, "host.toml"), "provider = \"ovh\"\n["+strings.Repeat("a.", 40000)+"a]\n")
		return filepath.Join(dir, "host.toml")
	}, "host.toml:2:1: a key of more than 16 parts", nil},
	{"20,000 nested inline tables", func(t testing.TB, dir string) string {
		writeFile(t, filepath.Join(dir, "host.toml"), "a = "+strings.Repeat("{a=", 20000)+"1"+strings.Repeat("}", 20000)+"\n")
		return filepath.Join(dir, "host.toml")
	}, "host.toml:1:53: inline tables and arrays nest more than 16 deep", nil},
	{"200,000 nested inline tables", func(t testing.TB, dir string) string {
		writeFile(t, filepath.Join(dir, "host.toml"), "a = "+strings.Repeat("{a=", 200000)+"1"+strings.Repeat("}", 200000)+"\n")
		return filepath.Join(dir, "host.toml")
	}, "host.toml: is 800006 bytes, more than the 256 KiB nixplan reads here", nil},
	{"100 MB host name", func(t testing.TB, dir string) string {
		f, err := os.Create(filepath.Join(dir, "host.toml"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		f.WriteString("[host]\nname = \"")
		chunk := []byte(strings.Repeat("a", 1<<20))
		for range 100 {
			f.Write(chunk)
		}
		f.WriteString("\"\n")
		return filepath.Join(dir, "host.toml")
	}, "host.toml: is 104857617 bytes, more than the 256 KiB nixplan reads here", nil},
	{"200 KB host name", func(t testing.TB, dir string) string {
		writeFile(t, filepath.Join(dir, "host.toml"), strings.Replace(exampleWith(t, ""), `name = "blog-demo"`, `name = "`+strings.Repeat("A", 200<<10)+`"`, 1))
		return filepath.Join(dir, "host.toml")
	}, `host.toml: host.name: "` + strings.Repeat("A", 160) + `"… (204800 bytes) is not a valid host name (RFC 1123 label)`, nil},
	{"20,000 unknown keys", func(t testing.TB, dir string) string {
		var b strings.Builder
		for i := range 20000 {
			fmt.Fprintf(&b, "k%d = 1\n", i)
		}
		writeFile(t, filepath.Join(dir, "host.toml"), b.String())
		return filepath.Join(dir, "host.toml")
	}, "host.toml: and 19980 more unknown keys", nil},
	{"30,000-line drifted file for diff", func(t testing.TB, dir string) string {
		return driftedBundle(t, dir, otherLines(30000))
	}, "kexec-install.sh changed: --- committed/kexec-install.sh", compareDrifted},
	{"20 MB drifted file for diff", func(t testing.TB, dir string) string {
		return driftedBundle(t, dir, bytes.Repeat([]byte("x"), 20<<20))
	}, "kexec-install.sh changed: 20971520 bytes, no diff", compareDrifted},
}

// driftedBundle writes the example's bundle into dir/bundle with
// kexec-install.sh replaced by text.
func driftedBundle(t testing.TB, dir string, text []byte) string {
	b := diffTestBundle(t)
	bundle := filepath.Join(dir, "bundle")
	if err := plan.Write(b, bundle); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, plan.KexecInstallFile), text, 0o755); err != nil {
		t.Fatal(err)
	}
	return bundle
}

// compareDrifted compares the example's bundle with the folder at path and
// says how each file drifted.
func compareDrifted(path string) (string, error) {
	b, err := exampleBundle()
	if err != nil {
		return "", err
	}
	drift, err := plan.CompareBundle(b, path, "committed", "rendered")
	if err != nil {
		return "", err
	}
	var out []string
	for _, d := range drift {
		if d.Diff == nil {
			out = append(out, fmt.Sprintf("%s changed: %d bytes, no diff", d.Name, d.Size))
			continue
		}
		first, _, _ := strings.Cut(string(d.Diff), "\n")
		out = append(out, fmt.Sprintf("%s changed: %s (%d bytes of diff)", d.Name, first, len(d.Diff)))
	}
	return strings.Join(out, "\n"), nil
}

// exampleBundle is the example's bundle, rendered once.
var exampleBundle = sync.OnceValues(func() (*plan.Bundle, error) {
	spec, err := plan.Load("../examples/ovh-kimsufi.toml")
	if err != nil {
		return nil, err
	}
	p, ps := plan.Validate(spec)
	if p == nil {
		return nil, ps
	}
	return plan.Render(p)
})

// loadHostile loads and validates the spec at path and returns the error.
func loadHostile(path string) error {
	spec, err := plan.Load(path)
	if err != nil {
		return err
	}
	if p, ps := plan.Validate(spec); p == nil {
		return ps
	}
	return nil
}

// TestHostileInputs feeds each input of the table to Load and Validate and
// requires its clear error, and every message line short. A case that hangs
// fails after a minute instead of stopping the suite; how long each takes
// and how much it allocates is BenchmarkHostileInputs'.
func TestHostileInputs(t *testing.T) {
	for _, c := range hostileInputs {
		t.Run(c.name, func(t *testing.T) {
			path := c.setup(t, t.TempDir())
			if c.run != nil {
				got, err := c.run(path)
				if err != nil || !strings.Contains(got, c.want) {
					t.Errorf("got %q, %v; want %q in it", got, err, c.want)
				}
				return
			}
			done := make(chan error, 1)
			go func() { done <- loadHostile(path) }()
			var err error
			select {
			case err = <-done:
			case <-time.After(time.Minute):
				t.Fatal("still loading after a minute")
			}
			var ps plan.Problems
			if !errors.As(err, &ps) {
				t.Fatalf("Load and Validate = %v, want problems", err)
			}
			if !strings.Contains(ps.Error(), c.want) {
				t.Errorf("problems do not say %q:\n%s", c.want, ps.Error())
			}
			for _, p := range ps {
				if len(p.Error()) > 500 || len(p.Hint) > 500 {
					t.Errorf("a message of %d bytes: %.200s…", len(p.Error()), p.Error())
				}
			}
		})
	}
}

// BenchmarkHostileInputs measures the time and memory each hostile input
// takes to be refused.
func BenchmarkHostileInputs(b *testing.B) {
	for _, c := range hostileInputs {
		b.Run(strings.ReplaceAll(c.name, " ", "_"), func(b *testing.B) {
			path := c.setup(b, b.TempDir())
			b.ReportAllocs()
			for b.Loop() {
				if c.run != nil {
					if _, err := c.run(path); err != nil {
						b.Fatal(err)
					}
				} else if err := loadHostile(path); err == nil {
					b.Fatal("accepted")
				}
			}
		})
	}
}
