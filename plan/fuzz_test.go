package plan_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nixplan/nixplan/plan"
)

// FuzzRender runs Parse → Validate → Render (which includes Check) on
// arbitrary spec text: nothing may panic, a refused spec must say why, and a
// spec that validates must render scripts that parse. Seeds: the examples,
// testdata/bad and testdata/fuzz; the fuzzer keeps what it finds in
// plan/testdata/fuzz/FuzzRender. In CI it runs the seeds as a regular test;
// `go test ./plan -run '^$' -fuzz FuzzRender -fuzztime 10m` explores.
func FuzzRender(f *testing.F) {
	for _, pattern := range []string{"../examples/*.toml", "../testdata/bad/*.toml", "../testdata/fuzz/*.toml"} {
		files, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(string(data))
		}
	}
	f.Fuzz(func(t *testing.T, text string) {
		spec, err := plan.Parse("fuzz.toml", []byte(text))
		if err != nil {
			var ps plan.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("Parse failed without problems: %v", err)
			}
			_ = ps.Error()
			return
		}
		p, ps := plan.Validate(spec)
		if p == nil {
			if len(ps.Errors()) == 0 {
				t.Fatal("Validate refused the spec without an error")
			}
			_ = ps.Error()
			return
		}
		b, err := plan.Render(p)
		if err != nil {
			t.Fatalf("a valid spec does not render: %v\nspec:\n%s", err, text)
		}
		if want := 6 + len(p.Nixpkgs.FlakeRev)/40; len(b.Files) != want {
			t.Fatalf("bundle has %d files, want %d", len(b.Files), want)
		}
	})
}
