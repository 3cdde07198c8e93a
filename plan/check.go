package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"

	"mvdan.cc/sh/v3/syntax"
)

// CheckError is a rendered bundle that breaks an invariant. It names the file
// (and so the template of the same name) and, for parse errors, the line.
type CheckError struct {
	File string
	Line int
	Msg  string
}

func (e *CheckError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("rendered %s (template templates/%s.tmpl) line %d: %s", e.File, e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("rendered %s: %s", e.File, e.Msg)
}

// Check verifies a rendered bundle: every script parses as bash, and each
// file embedded in kexec-install.sh (configuration.nix, and flake.nix in
// flake mode) contains no line equal to its heredoc's delimiter and is
// embedded byte for byte.
func Check(b *Bundle) error {
	for _, e := range embedded {
		name, delim := e.name, e.delim
		f := b.File(name)
		if f == nil {
			continue
		}
		for _, line := range strings.Split(string(f.Data), "\n") {
			if line == delim {
				return &CheckError{File: name, Msg: "a line equals the heredoc delimiter " + delim}
			}
		}
	}
	// Parsing is most of a render's time: the scripts are parsed at once,
	// each once, and not at all when its body already parsed (see
	// parsedBodies). The trees of the scripts simulate runs are kept for it
	// (see lastTrees). The first error in file order is reported.
	errs := make([]error, len(b.Files))
	var wg sync.WaitGroup
	for i, f := range b.Files {
		// The bundle's own scripts; a .sh file of the spec's modules or
		// flake (in a folder) is the user's.
		if !strings.HasSuffix(f.Name, ".sh") || strings.Contains(f.Name, "/") {
			continue
		}
		wg.Go(func() {
			if simulated[f.Name] {
				_, errs[i] = ScriptTree(f.Name, f.Data)
			} else {
				errs[i] = checkParses(f.Name, f.Data)
			}
		})
	}
	wg.Wait()
	if err := firstError(errs); err != nil {
		return err
	}
	kexecInstall := b.File(KexecInstallFile)
	if kexecInstall == nil {
		return &CheckError{File: KexecInstallFile, Msg: "missing from the bundle"}
	}
	parsed, err := ScriptTree(KexecInstallFile, kexecInstall.Data)
	if err != nil {
		return err
	}
	for _, e := range embedded {
		name, delim := e.name, e.delim
		f := b.File(name)
		if f == nil {
			continue
		}
		body, err := embeddedFile(parsed, delim)
		if err != nil {
			return err
		}
		if body != string(f.Data) {
			return &CheckError{File: KexecInstallFile, Msg: "the copy of " + name + " embedded in it differs from " + name}
		}
	}
	return checkManifest(b, parsed)
}

// BundledHeredocDelimiter ends the heredoc of kexec-install.sh that lists
// the files of the spec's modules or flake with their sha256.
const BundledHeredocDelimiter = "NIXPLAN_BUNDLED_FILES"

// checkManifest: the files kexec-install.sh checks and copies are exactly
// the bundle's modules/ and flake/ files, each with the sha256 of its
// bytes in the bundle.
func checkManifest(b *Bundle, parsed *syntax.File) error {
	var want strings.Builder
	for _, f := range b.Files {
		if strings.HasPrefix(f.Name, ModulesFolder+"/") || strings.HasPrefix(f.Name, FlakeFolder+"/") {
			sum := sha256.Sum256(f.Data)
			fmt.Fprintf(&want, "%s  %s\n", hex.EncodeToString(sum[:]), f.Name)
		}
	}
	if want.Len() == 0 {
		return nil
	}
	body, err := embeddedFile(parsed, BundledHeredocDelimiter)
	if err != nil {
		return err
	}
	if body != want.String() {
		return &CheckError{File: KexecInstallFile, Msg: "its list of the files of modules/ and flake/ differs from the bundle's files"}
	}
	return nil
}

// parsedBodies holds, per script name, the last body that parsed: the text
// after the script's leading comment lines. A script the same for every host
// but for its header comment is then parsed once per process, not once per
// host. Whole comment lines cannot change how the text after them parses, so
// a body that parsed once parses behind any header.
//
// A process starts knowing facts.sh's body, which is embedded in nixplan and
// the same for every host, so facts.sh is parsed only when it differs from
// that: TestEmbeddedFactsScriptParses parses the embedded body.
var parsedBodies = struct {
	sync.Mutex
	last map[string]string
}{last: startingBodies()}

// startingBodies is what parsedBodies holds when a process starts.
func startingBodies() map[string]string {
	return map[string]string{FactsFile: string(scriptBody([]byte(FactsScript())))}
}

// scriptBody is a script without its leading comment lines.
func scriptBody(data []byte) []byte {
	for len(data) > 0 && data[0] == '#' {
		_, rest, ok := bytes.Cut(data, []byte("\n"))
		if !ok {
			return nil
		}
		data = rest
	}
	return data
}

// checkParses is ParseScript without the tree, remembering bodies that parsed.
func checkParses(name string, data []byte) error {
	body := scriptBody(data)
	parsedBodies.Lock()
	last, ok := parsedBodies.last[name]
	parsedBodies.Unlock()
	if ok && last == string(body) {
		return nil
	}
	if _, err := ParseScript(name, data); err != nil {
		return err
	}
	parsedBodies.Lock()
	parsedBodies.last[name] = string(body)
	parsedBodies.Unlock()
	return nil
}

// firstError is the first non-nil error of errs.
func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// simulated names the scripts package simulate runs, whose trees ScriptTree
// keeps.
var simulated = map[string]bool{RescueBootstrapFile: true, KexecInstallFile: true}

// lastTrees holds, per script name, the last script ScriptTree parsed and its
// tree: the one rendered just before, which simulate runs next, so a
// rendered and simulated host parses each script once. One tree per name,
// so a fleet holds no more than one host's trees. The interpreter only reads
// a tree, so runs may share it.
var lastTrees = struct {
	sync.Mutex
	last map[string]keptTree
}{last: map[string]keptTree{}}

// keptTree holds a copy of the script's bytes, so that a bundle changed in
// place is parsed again.
type keptTree struct {
	data string
	tree *syntax.File
}

// ScriptTree is ParseScript, answered from lastTrees when the script is the
// same, byte for byte, as the one parsed last under its name. Check parses
// the bundle's scripts through it and package simulate runs the trees it
// returns, so a host that is rendered, checked and simulated parses each
// script once. The tree is shared: callers only read it.
func ScriptTree(name string, data []byte) (*syntax.File, error) {
	lastTrees.Lock()
	kept, ok := lastTrees.last[name]
	lastTrees.Unlock()
	if ok && kept.data == string(data) {
		return kept.tree, nil
	}
	tree, err := ParseScript(name, data)
	if err != nil {
		return nil, err
	}
	lastTrees.Lock()
	lastTrees.last[name] = keptTree{data: string(data), tree: tree}
	lastTrees.Unlock()
	return tree, nil
}

// ParseScript parses a bundle script as bash.
func ParseScript(name string, data []byte) (*syntax.File, error) {
	f, err := syntax.NewParser(syntax.Variant(syntax.LangBash)).Parse(bytes.NewReader(data), name)
	if err != nil {
		if pe, ok := err.(syntax.ParseError); ok {
			return nil, &CheckError{File: name, Line: int(pe.Pos.Line()), Msg: pe.Text}
		}
		return nil, &CheckError{File: name, Msg: err.Error()}
	}
	return f, nil
}

// EmbeddedConfiguration returns the body of the quoted heredoc that carries
// configuration.nix in kexec-install.sh, as bash would read it.
func EmbeddedConfiguration(script []byte) (string, error) {
	f, err := ParseScript(KexecInstallFile, script)
	if err != nil {
		return "", err
	}
	return embeddedFile(f, ConfigHeredocDelimiter)
}

// embeddedFile returns the body of the one quoted heredoc ended by delim.
func embeddedFile(f *syntax.File, delim string) (string, error) {
	var bodies []string
	syntax.Walk(f, func(node syntax.Node) bool {
		r, ok := node.(*syntax.Redirect)
		if !ok || r.Op != syntax.Hdoc || r.Word == nil || len(r.Word.Parts) != 1 {
			return true
		}
		var body string
		if r.Hdoc != nil {
			body = r.Hdoc.Lit()
		}
		// Only a quoted delimiter keeps the body literal, free of expansion.
		switch part := r.Word.Parts[0].(type) {
		case *syntax.SglQuoted:
			if part.Value == delim {
				bodies = append(bodies, body)
			}
		case *syntax.Lit:
			if part.Value == delim {
				bodies = append(bodies, "\x00unquoted")
			}
		}
		return true
	})
	switch {
	case len(bodies) != 1:
		return "", &CheckError{File: KexecInstallFile, Msg: fmt.Sprintf("want exactly one %s heredoc, found %d", delim, len(bodies))}
	case bodies[0] == "\x00unquoted":
		return "", &CheckError{File: KexecInstallFile, Msg: "the " + delim + " heredoc's delimiter is not quoted, so bash would expand its body"}
	}
	return bodies[0], nil
}
