package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// maxListBytes caps a --from list: 64 MiB is some 800,000 paths.
const maxListBytes = 64 << 20

// specInputs turns the spec operands and --from into spec paths, in order.
// An operand that is a folder stands for the *.toml files in it (not in its
// subfolders, nor those whose name starts with a dot), sorted by name;
// --from FILE lists one spec path a line (blank lines skipped), and
// --from - reads the list from standard input. fleet is true when the
// bundles go into DIR/HOST: --fleet says so, a folder or a list says so,
// and so do several specs; one spec given as an operand writes into DIR.
func (c *cli) specInputs(fs *pflag.FlagSet, operands []string) (files []string, fleet bool, err error) {
	fleet, _ = fs.GetBool("fleet")
	for _, op := range operands {
		fi, err := os.Stat(op)
		if err != nil || !fi.IsDir() {
			files = append(files, op) // Load names what is wrong with it
			continue
		}
		fleet = true
		found, err := specsIn(op)
		if err != nil {
			return nil, false, err
		}
		files = append(files, found...)
	}
	if from := *stringFlag(fs, "from"); from != "" {
		fleet = true
		listed, err := c.readList(from)
		if err != nil {
			return nil, false, err
		}
		files = append(files, listed...)
	}
	return files, fleet || len(files) > 1, nil
}

// specsIn lists a folder's specs.
func specsIn(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if name := e.Name(); strings.HasSuffix(name, ".toml") && !strings.HasPrefix(name, ".") && !e.IsDir() {
			files = append(files, filepath.Join(dir, name))
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: a folder without any *.toml spec; give the folder of the host specs", dir)
	}
	sort.Strings(files)
	return files, nil
}

// readList reads a --from list: a file, or standard input for "-".
func (c *cli) readList(from string) ([]string, error) {
	name, r := "standard input", c.stdin
	if from != "-" {
		f, err := os.Open(from)
		if err != nil {
			return nil, fmt.Errorf("--from: %w", err)
		}
		defer f.Close()
		if fi, err := f.Stat(); err == nil && fi.IsDir() {
			return nil, fmt.Errorf("--from %s: a folder; --from takes a file listing one spec a line, and a folder of specs is given as an operand", from)
		}
		name, r = from, f
	}
	sc := bufio.NewScanner(io.LimitReader(r, maxListBytes+1))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var files []string
	read, line := 0, 0
	for sc.Scan() {
		line++
		read += len(sc.Bytes()) + 1
		if read > maxListBytes {
			return nil, fmt.Errorf("--from %s: longer than %d MiB; split the fleet", name, maxListBytes>>20)
		}
		if path := strings.TrimSuffix(sc.Text(), "\r"); strings.TrimSpace(path) != "" {
			files = append(files, path)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line %d is longer than 1 MiB, which no spec path is", line+1)
		}
		return nil, fmt.Errorf("--from %s: %w", name, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("--from %s: lists no spec", name)
	}
	return files, nil
}
