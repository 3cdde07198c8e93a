package plan

import (
	"bytes"
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
	for name, delim := range embedded {
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
	// Parsing is most of a render's time: each script is parsed once, and
	// not at all when its body already parsed (see parsedBodies).
	for _, f := range b.Files {
		if strings.HasSuffix(f.Name, ".sh") && f.Name != KexecInstallFile {
			if err := checkParses(f.Name, f.Data); err != nil {
				return err
			}
		}
	}
	kexecInstall := b.File(KexecInstallFile)
	if kexecInstall == nil {
		return &CheckError{File: KexecInstallFile, Msg: "missing from the bundle"}
	}
	parsed, err := ParseScript(KexecInstallFile, kexecInstall.Data)
	if err != nil {
		return err
	}
	for name, delim := range embedded {
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
	return nil
}

// parsedBodies holds, per script name, the last body that parsed: the text
// after the script's leading comment lines. A script the same for every host
// but for its header comment (facts.sh) is then parsed once per process, not
// once per host. Whole comment lines cannot change how the text after them
// parses, so a body that parsed once parses behind any header.
var parsedBodies = struct {
	sync.Mutex
	last map[string]string
}{last: map[string]string{}}

// checkParses is ParseScript without the tree, remembering bodies that parsed.
func checkParses(name string, data []byte) error {
	body := data
	for len(body) > 0 && body[0] == '#' {
		i := bytes.IndexByte(body, '\n')
		if i < 0 {
			body = nil
			break
		}
		body = body[i+1:]
	}
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
