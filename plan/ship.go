package plan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
)

// Shipped is a kexec installer tarball that travels in the bundle, for
// installs where the rescue system cannot or should not download it. It is
// hundreds of MB, so Write copies it from Source instead of holding it.
type Shipped struct {
	Name   string // the file name in the bundle: the URL's, where rescue-bootstrap.sh looks
	Source string // the file given on the command line
	SHA256 string
}

// GitignoreFile keeps a shipped tarball out of git.
const GitignoreFile = ".gitignore"

// ShipTarball renders the bundle with the kexec tarball at path in it: its
// sha256 is pinned in the scripts (a spec that pins another is refused),
// SHA256SUMS lists it, and a .gitignore keeps it out of git.
func ShipTarball(p *Plan, path string) (*Bundle, error) {
	sum, err := fileSHA256(path)
	if err != nil {
		return nil, err
	}
	if p.Kexec.SHA256 != "" && p.Kexec.SHA256 != sum {
		return nil, fmt.Errorf("%s has sha256 %s, but the spec pins kexec.sha256 = %q: it is not the tarball the spec names", path, sum, p.Kexec.SHA256)
	}
	// What rescue-bootstrap.sh reads on the server, read here first.
	run, err := ReadKexecTarball(path)
	if err != nil {
		return nil, err
	}
	if problems := run.Check(p); len(problems) > 0 {
		var lines []string
		for _, pr := range problems {
			lines = append(lines, pr.Fact+" (fix: "+pr.Fix+")")
		}
		return nil, fmt.Errorf("%s does not fit the spec: %s", path, strings.Join(lines, "; "))
	}
	shipped := *p
	shipped.Kexec.SHA256 = sum
	shipped.Kexec.Shipped = true
	return render(&shipped, &Shipped{Name: p.Kexec.Tarball, Source: path, SHA256: sum})
}

func fileSHA256(path string) (string, error) {
	f, _, err := openRegular(path, MaxTarballBytes)
	if err != nil {
		return "", fmt.Errorf("%s: %s", path, readErrorText(err))
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, io.LimitReader(f, MaxTarballBytes)); err != nil {
		return "", fmt.Errorf("reading %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// gitignore lists the shipped tarball, so committing the bundle leaves it out.
func gitignore(p *Plan, name string) []byte {
	return []byte(strings.Join([]string{
		"# " + p.Header(),
		"# The kexec tarball is hundreds of MB: copy it with the bundle, do not commit it.",
		"/" + name,
	}, "\n") + "\n")
}

// copyShipped copies the shipped tarball into a folder being written, and
// checks that it is still the file that was hashed.
func copyShipped(s *Shipped, dir string) error {
	in, _, err := openRegular(s.Source, MaxTarballBytes)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dir+"/"+s.Name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(out, h), io.LimitReader(in, MaxTarballBytes)); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.SHA256 {
		return fmt.Errorf("%s changed while the bundle was written (sha256 %s, was %s)", s.Source, got, s.SHA256)
	}
	return nil
}
