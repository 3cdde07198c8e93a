package plan_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/nixplan/nixplan/plan"
)

// FuzzRender runs Load → Validate → Render (which includes Check) on
// arbitrary spec text under an arbitrary file name, with an arbitrary
// shared file beside it that the spec (or the shared file itself) may
// include as common.toml: nothing may panic or hang, a refused spec must
// say why in printable messages, a name that is not printable is refused,
// and a spec that validates must render scripts that parse, every header
// one comment line. Seeds: the examples, testdata/bad and testdata/fuzz,
// and include trees of them; the fuzzer keeps what it finds in
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
			f.Add(filepath.Base(file), string(data), "")
		}
	}
	example, err := os.ReadFile("../examples/ovh-kimsufi.toml")
	if err != nil {
		f.Fatal(err)
	}
	host, shared, _ := strings.Cut(string(example), "[network]")
	f.Add("web1.toml", `include = ["common.toml"]`+"\n"+host, "[network]"+shared)
	f.Add("web1.toml", `include = ["common.toml", "common.toml"]`+"\n"+host, "[network]"+shared)
	f.Add("web1.toml", `include = ["common.toml"]`+"\n"+host, `include = ["common.toml"]`+"\n[network]"+shared)
	f.Add("$(touch x) -->.toml", string(example), "")
	f.Add("line\nbreak.toml", string(example), "")

	f.Fuzz(func(t *testing.T, name, text, common string) {
		dir := t.TempDir()
		var spec *plan.Spec
		var err error
		if name == "" || name == "." || name == ".." || name == "common.toml" || strings.ContainsAny(name, "/\x00") || len(name) > 255 {
			// Not a name a file can have: the text is parsed under it.
			spec, err = plan.Parse(name, []byte(text))
		} else {
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "common.toml"), []byte(common), 0o644); err != nil {
				t.Fatal(err)
			}
			spec, err = plan.Load(path)
		}
		printable := strings.IndexFunc(name, func(r rune) bool { return r == unicode.ReplacementChar || !unicode.IsGraphic(r) }) < 0
		if err != nil {
			var ps plan.Problems
			if !errors.As(err, &ps) || len(ps) == 0 {
				t.Fatalf("Load failed without problems: %v", err)
			}
			for _, p := range ps {
				if strings.ContainsAny(p.Error(), "\n\r\x1b") {
					t.Fatalf("a message is not one printable line: %q", p.Error())
				}
			}
			return
		}
		if !printable {
			t.Fatalf("the spec name %q is not printable, and Load took it", name)
		}
		p, ps := plan.Validate(spec)
		for _, pr := range ps {
			if strings.ContainsAny(pr.Error(), "\n\r\x1b") {
				t.Fatalf("a message is not one printable line: %q", pr.Error())
			}
		}
		if p == nil {
			if len(ps.Errors()) == 0 {
				t.Fatal("Validate refused the spec without an error")
			}
			return
		}
		b, err := plan.Render(p)
		if err != nil {
			t.Fatalf("a valid spec does not render: %v\nspec %q:\n%s", err, name, text)
		}
		if want := 7 + len(p.Nixpkgs.FlakeRev)/40; len(b.Files) != want {
			t.Fatalf("bundle has %d files, want %d", len(b.Files), want)
		}
		header := p.Header()
		if strings.ContainsAny(header, "\n\r") || strings.Contains(header, "-->") {
			t.Fatalf("the header %q can end its comment", header)
		}
		for _, f := range b.Files {
			want := "# " + header + "\n"
			if f.Name == plan.ChecklistFile {
				want = "<!-- " + header + " -->\n"
			}
			if !strings.Contains(string(f.Data), want) {
				t.Errorf("%s does not hold the header as one comment line", f.Name)
			}
		}
	})
}
