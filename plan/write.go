package plan

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Write puts a bundle into dir so that dir holds a whole bundle, the old one
// or the new one, at every instant, even if nixplan is killed: the files go
// into a folder beside dir (.DIR.nixplan-new), which then trades places with
// dir in one step (Linux's renameat2 with RENAME_EXCHANGE), and the old
// bundle, now beside dir, is removed. Where the exchange is missing (another
// system, or a file system without it) dir is first moved aside
// (.DIR.nixplan-old), which leaves an instant without a bundle at dir.
//
// What a killed Write leaves beside dir, the next Write of dir cleans up, and
// where dir is missing it first puts back the old bundle it finds moved aside.
// An existing dir is replaced only when it is empty or holds an earlier
// nixplan bundle whose files can all be removed; nothing is written
// otherwise, and nothing is left behind when Write fails.
//
// Write is the one way a bundle reaches the disk, in its two steps: Stage
// writes the new bundle beside dir, Publish puts it in dir's place. render
// writes one spec with Write, and a fleet by staging each host's bundle as
// soon as it renders and publishing them all once every spec has succeeded.
func Write(b *Bundle, dir string) error {
	s, err := Stage(b, dir)
	if err != nil {
		return err
	}
	return s.Publish()
}

// Staged is a bundle written into the folder beside its bundle folder
// (.DIR.nixplan-new), not yet published.
type Staged struct {
	dir, newDir, oldDir string
}

// Stage is Write's first step: it cleans what a killed Write left beside
// dir, checks that dir may be replaced and writes the bundle beside it.
// Nothing is left behind when it fails. Publish or Discard the result.
func Stage(b *Bundle, dir string) (*Staged, error) {
	dir = filepath.Clean(dir)
	if err := notCurrent(dir); err != nil {
		return nil, err
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return nil, err
	}
	newDir, oldDir := leftoverPaths(dir)
	if err := recoverLeftovers(dir, newDir, oldDir); err != nil {
		return nil, err
	}
	if err := replaceable(dir); err != nil {
		return nil, err
	}
	if err := os.Mkdir(newDir, 0o755); err != nil {
		return nil, err
	}
	s := &Staged{dir: dir, newDir: newDir, oldDir: oldDir}
	if err := s.write(b); err != nil {
		_ = os.RemoveAll(newDir)
		return nil, err
	}
	return s, nil
}

func (s *Staged) write(b *Bundle) error {
	for _, f := range b.Files {
		// The spec's modules and flake keep their folders.
		if err := os.MkdirAll(filepath.Dir(filepath.Join(s.newDir, f.Name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(s.newDir, f.Name), f.Data, os.FileMode(f.Mode)); err != nil {
			return err
		}
		// WriteFile's mode is filtered by the umask; the bundle's modes are not.
		if err := os.Chmod(filepath.Join(s.newDir, f.Name), os.FileMode(f.Mode)); err != nil {
			return err
		}
	}
	if b.Shipped != nil {
		if err := copyShipped(b.Shipped, s.newDir); err != nil {
			return err
		}
	}
	return os.Chmod(s.newDir, 0o755)
}

// Discard removes a staged bundle that will not be published.
func (s *Staged) Discard() error { return os.RemoveAll(s.newDir) }

// Publish is Write's second step: the staged bundle trades places with dir,
// which is checked once more (it may have changed since Stage), and the old
// bundle is removed. When Publish fails the staged bundle is removed.
func (s *Staged) Publish() error {
	dir, newDir, oldDir := s.dir, s.newDir, s.oldDir
	defer os.RemoveAll(newDir) // the new bundle on failure; after an exchange, the old one
	if err := replaceable(dir); err != nil {
		return err
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return os.Rename(newDir, dir)
	}
	switch err := exchangeDirs(newDir, dir); {
	case err == nil:
	case errors.Is(err, errNoExchange):
		if err := os.Rename(dir, oldDir); err != nil {
			return err
		}
		if err := os.Rename(newDir, dir); err != nil {
			_ = os.Rename(oldDir, dir)
			return err
		}
		newDir = oldDir
	default:
		return err
	}
	if err := os.RemoveAll(newDir); err != nil {
		return fmt.Errorf("the new bundle is in %s, but the old one could not be removed from %s: %w; the next render removes it", dir, newDir, err)
	}
	return nil
}

// errNoExchange: the system or file system cannot exchange two folders.
var errNoExchange = errors.New("no atomic exchange of folders here")

// exchangeDirs trades the places of two folders in one step, or returns
// errNoExchange; tests stand in another.
var exchangeDirs = exchange

// leftoverPaths are the folders Write uses beside dir: the bundle being
// written (and, after the exchange, the old one being removed), and the old
// bundle moved aside where folders cannot be exchanged.
func leftoverPaths(dir string) (newDir, oldDir string) {
	prefix := filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".nixplan-")
	return prefix + "new", prefix + "old"
}

// leftoverRE matches what a Write killed midway leaves beside a bundle
// folder, now and as earlier versions named it (.DIR.nixplan-123456 and
// .DIR.nixplan-123456.old).
var leftoverRE = regexp.MustCompile(`^\..+\.nixplan-(new|old|[0-9]+|[0-9]+\.old)$`)

// IsLeftover reports whether a name in a bundle folder's parent is what a
// killed Write leaves there, not a bundle of its own.
func IsLeftover(name string) bool { return leftoverRE.MatchString(name) }

// recoverLeftovers undoes what a killed Write left beside dir: when dir is
// gone and the old bundle is moved aside, it goes back; the rest is removed.
func recoverLeftovers(dir, newDir, oldDir string) error {
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) && IsBundle(oldDir) {
		if err := os.Rename(oldDir, dir); err != nil {
			return fmt.Errorf("putting back the bundle an interrupted render moved to %s: %w", oldDir, err)
		}
	}
	for _, left := range []string{newDir, oldDir} {
		fi, err := os.Lstat(left)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is in the way: it is not a folder an interrupted render left; remove it", left)
		}
		if err := os.RemoveAll(left); err != nil {
			return fmt.Errorf("removing %s, which an interrupted render left: %w", left, err)
		}
	}
	return nil
}

// Replaceable returns why Write would refuse to replace dir, or nil: a
// fleet's folders can all be checked before any is written.
func Replaceable(dir string) error { return replaceable(filepath.Clean(dir)) }

// replaceable says whether dir may be replaced by a new bundle: it is
// missing, or an empty folder or an earlier bundle whose files can be
// removed, and it is neither the current folder (nor one holding it) nor a
// mount point, which no rename can move.
func replaceable(dir string) error {
	if err := notCurrent(dir); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s exists and is not a folder", dir)
	}
	if mountPoint(dir, fi) {
		return fmt.Errorf("%s is a mount point, which nixplan cannot replace: give a folder inside it", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 && !IsBundle(dir) {
		return fmt.Errorf("%s exists and is not a nixplan bundle; it is left alone", dir)
	}
	if err := removable(dir, entries); err != nil {
		return fmt.Errorf("%s cannot be replaced: %w", dir, err)
	}
	return nil
}

// notCurrent refuses the current folder and the folders that hold it:
// rename(2) cannot move "." (EBUSY), and a shell left in a folder that was
// replaced would stand in the removed old bundle.
func notCurrent(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err == nil && (cwd == abs || strings.HasPrefix(cwd, strings.TrimSuffix(abs, "/")+"/")) {
		return fmt.Errorf("%s is the current folder or holds it; nixplan replaces a bundle folder as a whole: give a folder inside it, e.g. -o bundle", dir)
	}
	return nil
}

// maxSumsBytes caps the SHA256SUMS IsBundle reads: one line a file.
const maxSumsBytes = 1 << 20

// IsBundle reports whether dir holds a bundle written by nixplan: its
// SHA256SUMS starts with the generated-by header and lists every file there,
// in its folders too.
func IsBundle(dir string) bool {
	data, err := ReadRegular(filepath.Join(dir, SumsFile), maxSumsBytes)
	if err != nil || !bytes.HasPrefix(data, []byte("# Code generated by nixplan ")) {
		return false
	}
	listed := map[string]bool{SumsFile: true}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if _, name, ok := strings.Cut(sc.Text(), "  "); ok && !strings.HasPrefix(sc.Text(), "#") {
			listed[name] = true
		}
	}
	names, err := bundleNames(dir, "")
	if err != nil {
		return false
	}
	for _, name := range names {
		if !listed[strings.TrimSuffix(name, "/")] {
			return false
		}
	}
	return true
}

// bundleNames lists what a bundle folder holds, by slash-separated path
// relative to it: files, and everything else (links, empty folders) with
// a folder's name ending in "/". It goes into the folders of the spec's
// modules and flake.
func bundleNames(dir, rel string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, rel))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if rel != "" {
			name = rel + "/" + name
		}
		if !e.IsDir() {
			names = append(names, name)
			continue
		}
		sub, err := bundleNames(dir, name)
		if err != nil {
			return nil, err
		}
		if len(sub) == 0 {
			sub = []string{name + "/"}
		}
		names = append(names, sub...)
	}
	return names, nil
}
