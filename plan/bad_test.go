package plan_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nixplan/nixplan/plan"
)

// TestBadSpecs loads every spec in testdata/bad and compares its problems
// with the error and hint lines of the .err file beside it, which is also the
// exact output of `nixplan check` (cmd/nixplan/testdata/script/bad.txtar).
func TestBadSpecs(t *testing.T) {
	t.Chdir("../testdata")
	specs, err := filepath.Glob("bad/*.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(specs) < 120 {
		t.Fatalf("want at least 120 bad specs, have %d", len(specs))
	}
	for _, file := range specs {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".toml"), func(t *testing.T) {
			wantText, err := os.ReadFile(strings.TrimSuffix(file, ".toml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			spec, err := plan.Load(file)
			if err == nil {
				p, ps := plan.Validate(spec)
				if p != nil {
					t.Fatalf("%s validates; a bad spec must not", file)
				}
				err = ps
			}
			for _, p := range err.(plan.Problems) {
				kind := "error"
				if p.Warning {
					kind = "warning"
				}
				got = append(got, "nixplan: "+kind+": "+p.Error())
				if p.Hint != "" {
					got = append(got, "nixplan: hint: "+p.Hint)
				}
			}
			want := strings.Split(strings.TrimSuffix(string(wantText), "\n"), "\n")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("problems differ from %s.err (-want +got):\n%s", strings.TrimSuffix(file, ".toml"), diff)
			}
			// Every error names a file and either a position or a key.
			for _, line := range want {
				if rest, ok := strings.CutPrefix(line, "nixplan: error: "); ok {
					name, detail, _ := strings.Cut(rest, ": ")
					if !strings.HasSuffix(strings.Split(name, ":")[0], ".toml") || detail == "" {
						t.Errorf("error does not name the spec file: %q", line)
					}
				}
			}
		})
	}
}

// TestDistinctBadSpecs makes sure no two bad specs test the same message.
func TestDistinctBadSpecs(t *testing.T) {
	errs, _ := filepath.Glob("../testdata/bad/*.err")
	seen := map[string]string{}
	for _, f := range errs {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// The message and position without the file name.
		first := strings.SplitN(string(data), "\n", 2)[0]
		_, msg, _ := strings.Cut(first, ".toml")
		if other, ok := seen[msg]; ok {
			t.Errorf("%s and %s give the same first error: %s", other, f, msg)
		}
		seen[msg] = f
	}
}
