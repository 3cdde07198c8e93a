package plan

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// DriftKind is how one file of a bundle folder differs from a fresh render.
type DriftKind int

const (
	// FileChanged: the folder's file has other bytes; Drift.Diff shows them.
	FileChanged DriftKind = iota + 1
	// FileMissing: the spec renders the file, the folder lacks it.
	FileMissing
	// FileExtra: the folder holds a file (or folder) the spec does not render.
	FileExtra
	// FileModeChanged: the file is executable in one and not in the other.
	FileModeChanged
	// FileNotRegular: the folder holds something other than a regular file
	// (a symlink, say) where the spec renders a file.
	FileNotRegular
)

// Drift is one way a bundle folder differs from what its spec renders today.
type Drift struct {
	Name string // relative to the bundle folder; a folder's ends in "/"
	Kind DriftKind
	// Diff is the unified diff from the folder's file to the rendered one,
	// for FileChanged; nil when the folder's file is over
	// MaxBundleFileBytes, whose Size is then set.
	Diff []byte
	Size int64
	// Executable says, for FileModeChanged, whether the rendered file is.
	Executable bool
}

// CompareBundle compares a rendered bundle with the files in dir, such as
// a bundle committed to git, and returns every difference: files changed,
// missing, extra, or with another executable bit, in the bundle's file order
// then extra names in sorted order. It returns none when dir holds exactly
// the bundle. Only the owner's executable bit is compared, since a checkout's
// other permission bits follow the umask.
//
// The diffs' headers are oldLabel/NAME for dir's file and newLabel/NAME for
// the rendered one.
func CompareBundle(b *Bundle, dir, oldLabel, newLabel string) ([]Drift, error) {
	fi, err := os.Stat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("%s: no such folder", dir)
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, fmt.Errorf("%s is not a folder", dir)
	}
	names, err := bundleNames(dir, "")
	if err != nil {
		return nil, err
	}
	onDisk := map[string]bool{}
	for _, name := range names {
		onDisk[name] = true
	}
	// rendered holds every folder the rendered files are in, so that an
	// extra folder is named once, not file by file.
	rendered := map[string]bool{}
	var drift []Drift
	for _, f := range b.Files {
		for d := path.Dir(f.Name); d != "."; d = path.Dir(d) {
			rendered[d] = true
		}
		file := filepath.Join(dir, filepath.FromSlash(f.Name))
		if !onDisk[f.Name] {
			kind := FileMissing
			if _, err := os.Lstat(file); err == nil {
				kind = FileNotRegular // a folder where the spec renders a file
			}
			drift = append(drift, Drift{Name: f.Name, Kind: kind})
			continue
		}
		delete(onDisk, f.Name)
		info, err := os.Lstat(file)
		if err != nil {
			return nil, err
		}
		if !info.Mode().IsRegular() {
			drift = append(drift, Drift{Name: f.Name, Kind: FileNotRegular})
			continue
		}
		data, err := ReadRegular(file, MaxBundleFileBytes)
		var tl *TooLargeError
		switch {
		case errors.As(err, &tl):
			drift = append(drift, Drift{Name: f.Name, Kind: FileChanged, Size: tl.Size})
		case err != nil:
			return nil, err
		case !bytes.Equal(data, f.Data):
			drift = append(drift, Drift{Name: f.Name, Kind: FileChanged,
				Diff: UnifiedDiff(oldLabel+"/"+f.Name, data, newLabel+"/"+f.Name, f.Data)})
		}
		if exec := f.Mode&0o100 != 0; exec != (info.Mode()&0o100 != 0) {
			drift = append(drift, Drift{Name: f.Name, Kind: FileModeChanged, Executable: exec})
		}
	}
	seen := map[string]bool{}
	extra := make([]string, 0, len(onDisk))
	for name := range onDisk {
		// The outermost folder the rendered bundle does not have, or the file.
		parts := strings.Split(strings.TrimSuffix(name, "/"), "/")
		for i := 1; i < len(parts); i++ {
			if d := strings.Join(parts[:i], "/"); !rendered[d] {
				name = d + "/"
				break
			}
		}
		if !seen[name] {
			seen[name] = true
			extra = append(extra, name)
		}
	}
	sort.Strings(extra)
	for _, name := range extra {
		drift = append(drift, Drift{Name: name, Kind: FileExtra})
	}
	return drift, nil
}
