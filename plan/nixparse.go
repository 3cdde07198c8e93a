package plan

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
)

// nixLocationRE finds the position in nix-instantiate's error text:
// "error: syntax error, unexpected '}'\n\n       at /path/x.nix:4:1:".
var nixLocationRE = regexp.MustCompile(`(?m)^\s*at (.+):([0-9]+):([0-9]+):?$`)

// ParseNix runs nix-instantiate --parse (the program at nixInstantiate) on
// every .nix file the spec brings, its modules or its flake, and returns a
// problem for each that does not parse, naming the file as the spec does,
// its line and column, and Nix's message. It is what check --nix adds; the
// rest of nixplan needs no Nix.
func ParseNix(p *Plan, nixInstantiate string) Problems {
	var ps Problems
	from := func(f UserFile) (file, key string) {
		if p.Flake != nil && strings.HasPrefix(f.Name, FlakeFolder+"/") {
			return p.Flake.From, "flake.path"
		}
		for _, m := range p.Modules {
			if strings.HasPrefix(f.Name+"/", ModulesFolder+"/"+m.Name+"/") {
				return m.From, m.Key
			}
		}
		return p.SpecFile, ""
	}
	for _, f := range p.BundledFiles() {
		if !strings.HasSuffix(f.Name, ".nix") {
			continue
		}
		var stderr bytes.Buffer
		cmd := exec.Command(nixInstantiate, "--parse", f.Source)
		cmd.Stderr = &stderr
		if err := cmd.Run(); err == nil {
			continue
		} else if _, ok := err.(*exec.ExitError); !ok {
			file, key := from(f)
			return append(ps, Problem{File: file, Key: key, Msg: "nix-instantiate --parse: " + err.Error(), Hint: "check --nix needs a working nix-instantiate on PATH"})
		}
		text := strings.TrimSpace(stderr.String())
		first, _, _ := strings.Cut(text, "\n")
		msg := f.Shown + ": " + strings.TrimPrefix(strings.TrimSpace(first), "error: ")
		if m := nixLocationRE.FindStringSubmatch(text); m != nil && m[1] == f.Source {
			msg = f.Shown + ":" + m[2] + ":" + m[3] + ": " + strings.TrimPrefix(strings.TrimSpace(first), "error: ")
		}
		file, key := from(f)
		ps = append(ps, Problem{File: file, Key: key, Msg: msg, Hint: "run nix-instantiate --parse on the file to see the line in context"})
	}
	return ps
}
