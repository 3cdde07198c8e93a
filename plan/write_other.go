//go:build !linux

package plan

import "io/fs"

// exchange: only Linux can trade two folders' places in one step here.
func exchange(a, b string) error { return errNoExchange }

// mountPoint is not known here: a rename of one fails with its own error.
func mountPoint(dir string, fi fs.FileInfo) bool { return false }

// removable is not checked ahead here: a failed removal says why.
func removable(dir string, entries []fs.DirEntry) error { return nil }
