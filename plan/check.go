package plan

import (
	"bytes"
	"fmt"
	"strings"

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

// Check verifies a rendered bundle: every script parses as bash, the
// configuration heredoc's delimiter does not occur in the configuration, and
// the copy embedded in kexec-install.sh is byte-identical to configuration.nix.
func Check(b *Bundle) error {
	config := b.File(ConfigurationFile)
	for _, line := range strings.Split(string(config.Data), "\n") {
		if line == ConfigHeredocDelimiter {
			return &CheckError{File: ConfigurationFile, Msg: "a line equals the heredoc delimiter " + ConfigHeredocDelimiter}
		}
	}
	for _, f := range b.Files {
		if !strings.HasSuffix(f.Name, ".sh") {
			continue
		}
		if _, err := ParseScript(f.Name, f.Data); err != nil {
			return err
		}
	}
	embedded, err := EmbeddedConfiguration(b.File(KexecInstallFile).Data)
	if err != nil {
		return err
	}
	if embedded != string(config.Data) {
		return &CheckError{File: KexecInstallFile, Msg: "the configuration embedded in it differs from configuration.nix"}
	}
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
			if part.Value == ConfigHeredocDelimiter {
				bodies = append(bodies, body)
			}
		case *syntax.Lit:
			if part.Value == ConfigHeredocDelimiter {
				bodies = append(bodies, "\x00unquoted")
			}
		}
		return true
	})
	switch {
	case len(bodies) != 1:
		return "", &CheckError{File: KexecInstallFile, Msg: fmt.Sprintf("want exactly one %s heredoc, found %d", ConfigHeredocDelimiter, len(bodies))}
	case bodies[0] == "\x00unquoted":
		return "", &CheckError{File: KexecInstallFile, Msg: "the configuration heredoc's delimiter is not quoted, so bash would expand its body"}
	}
	return bodies[0], nil
}
