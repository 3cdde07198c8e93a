package simulate

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// simFS is the file system a simulated script sees. Everything in it is
// virtual: it is seeded with the files the machine description implies and
// the bundle, and what the script writes stays in it. No real file is ever
// opened, for reading or for writing.
type simFS struct {
	mu    sync.Mutex
	files map[string]*simFile
	dirs  map[string]bool
	// generated files are made when they are read (/proc/mounts).
	generated map[string]func() []byte
	// wrote is told about every file a script finished writing.
	wrote func(path string, data []byte, note string)
}

type simFile struct {
	data []byte
	mode fs.FileMode
	// writers counts the handles open for writing, so that a copy of a file
	// still being written (the install log) is known to be partial.
	writers int
}

func newSimFS() *simFS {
	return &simFS{files: map[string]*simFile{}, dirs: map[string]bool{"/": true}, generated: map[string]func() []byte{}}
}

// abs makes p absolute against dir and cleans it.
func abs(dir, p string) string {
	if !path.IsAbs(p) {
		p = path.Join(dir, p)
	}
	return path.Clean(p)
}

// mkdirAll makes a folder and its parents.
func (v *simFS) mkdirAll(p string) {
	for p != "/" && p != "." {
		v.dirs[p] = true
		p = path.Dir(p)
	}
}

// put seeds a file, making its folders.
func (v *simFS) put(p string, data []byte, mode fs.FileMode) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.mkdirAll(path.Dir(p))
	// Clipped, as in read: an append reallocates instead of writing into
	// the caller's array (the bundle's, shared by simulations).
	v.files[p] = &simFile{data: slices.Clip(data), mode: mode}
}

func (v *simFS) isDir(p string) bool {
	return v.dirs[p]
}

// read returns a file's bytes, which callers must not modify.
func (v *simFS) read(p string) ([]byte, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if gen, ok := v.generated[p]; ok {
		return gen(), nil
	}
	if v.isDir(p) {
		return nil, &os.PathError{Op: "read", Path: p, Err: syscall.EISDIR}
	}
	f, ok := v.files[p]
	if !ok {
		return nil, &os.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	// Shared, not copied: writers only append or replace, and the capacity
	// is clipped so that an append to a copy never writes into this one.
	return slices.Clip(f.data), nil
}

// growing reports whether a file is open for writing.
func (v *simFS) growing(p string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	f, ok := v.files[p]
	return ok && f.writers > 0
}

// write replaces a file's bytes; its folder must exist.
func (v *simFS) write(p string, data []byte, mode fs.FileMode) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.isDir(path.Dir(p)) {
		return &os.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
	}
	if v.isDir(p) {
		return &os.PathError{Op: "open", Path: p, Err: syscall.EISDIR}
	}
	if f, ok := v.files[p]; ok {
		f.data = data
		return nil
	}
	v.files[p] = &simFile{data: data, mode: mode}
	return nil
}

func (v *simFS) rename(from, to string) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	f, ok := v.files[from]
	if !ok {
		return &os.PathError{Op: "rename", Path: from, Err: fs.ErrNotExist}
	}
	if !v.isDir(path.Dir(to)) {
		return &os.PathError{Op: "rename", Path: to, Err: fs.ErrNotExist}
	}
	delete(v.files, from)
	v.files[to] = f
	return nil
}

// remove removes a file, or with recursive a folder and all in it.
func (v *simFS) remove(p string, recursive bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.files[p]; ok {
		delete(v.files, p)
		return nil
	}
	if !v.isDir(p) || p == "/" {
		return &os.PathError{Op: "remove", Path: p, Err: fs.ErrNotExist}
	}
	if !recursive {
		return &os.PathError{Op: "remove", Path: p, Err: syscall.EISDIR}
	}
	prefix := p + "/"
	for q := range v.files {
		if strings.HasPrefix(q, prefix) {
			delete(v.files, q)
		}
	}
	for q := range v.dirs {
		if q == p || strings.HasPrefix(q, prefix) {
			delete(v.dirs, q)
		}
	}
	return nil
}

func (v *simFS) chmod(p string, mode fs.FileMode) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if f, ok := v.files[p]; ok {
		f.mode = mode
		return nil
	}
	if v.isDir(p) {
		return nil
	}
	return &os.PathError{Op: "chmod", Path: p, Err: fs.ErrNotExist}
}

// mkdir makes one folder; with parents, its parents too and an existing
// folder is fine.
func (v *simFS) mkdir(p string, parents bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.files[p]; ok {
		return &os.PathError{Op: "mkdir", Path: p, Err: fs.ErrExist}
	}
	if parents {
		v.mkdirAll(p)
		return nil
	}
	if v.isDir(p) {
		return &os.PathError{Op: "mkdir", Path: p, Err: fs.ErrExist}
	}
	if !v.isDir(path.Dir(p)) {
		return &os.PathError{Op: "mkdir", Path: p, Err: fs.ErrNotExist}
	}
	v.dirs[p] = true
	return nil
}

func (v *simFS) stat(p string) (fs.FileInfo, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if gen, ok := v.generated[p]; ok {
		return simInfo{name: path.Base(p), size: int64(len(gen())), mode: 0o444}, nil
	}
	if v.isDir(p) {
		return simInfo{name: path.Base(p), mode: fs.ModeDir | 0o755}, nil
	}
	if f, ok := v.files[p]; ok {
		return simInfo{name: path.Base(p), size: int64(len(f.data)), mode: f.mode}, nil
	}
	return nil, &os.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
}

func (v *simFS) readDir(p string) ([]fs.DirEntry, error) {
	v.mu.Lock()
	if !v.isDir(p) {
		v.mu.Unlock()
		return nil, &os.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
	}
	names := map[string]bool{}
	prefix := strings.TrimSuffix(p, "/") + "/"
	collect := func(q string) {
		if rest, ok := strings.CutPrefix(q, prefix); ok && rest != "" {
			names[strings.SplitN(rest, "/", 2)[0]] = true
		}
	}
	for q := range v.files {
		collect(q)
	}
	for q := range v.dirs {
		collect(q)
	}
	for q := range v.generated {
		collect(q)
	}
	v.mu.Unlock()
	var out []fs.DirEntry
	for _, name := range sortedNames(names) {
		info, err := v.stat(prefix + name)
		if err != nil {
			continue
		}
		out = append(out, fs.FileInfoToDirEntry(info))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// open serves the shell's redirections.
func (v *simFS) open(p string, flag int) (io.ReadWriteCloser, error) {
	if p == "/dev/null" {
		return devNull{}, nil
	}
	if flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		data, err := v.read(p)
		if err != nil {
			return nil, err
		}
		return readOnly{bytes.NewReader(data)}, nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.generated[p]; ok || strings.HasPrefix(p, "/dev/") || strings.HasPrefix(p, "/proc/") || strings.HasPrefix(p, "/sys/") {
		return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EACCES}
	}
	if v.isDir(p) {
		return nil, &os.PathError{Op: "open", Path: p, Err: syscall.EISDIR}
	}
	f, ok := v.files[p]
	if !ok {
		if flag&os.O_CREATE == 0 || !v.isDir(path.Dir(p)) {
			return nil, &os.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		f = &simFile{mode: 0o644}
		v.files[p] = f
	}
	if flag&os.O_TRUNC != 0 {
		f.data = nil
	}
	f.writers++
	return &simWriter{fs: v, path: p, file: f}, nil
}

// simWriter appends to a virtual file; closing it reports the write.
type simWriter struct {
	fs     *simFS
	path   string
	file   *simFile
	closed bool
}

func (w *simWriter) Read([]byte) (int, error) { return 0, errors.New("opened for writing") }

func (w *simWriter) Write(b []byte) (int, error) {
	w.fs.mu.Lock()
	defer w.fs.mu.Unlock()
	w.file.data = append(w.file.data, b...)
	return len(b), nil
}

func (w *simWriter) Close() error {
	w.fs.mu.Lock()
	if w.closed {
		w.fs.mu.Unlock()
		return nil
	}
	w.closed = true
	w.file.writers--
	data := bytes.Clone(w.file.data)
	w.fs.mu.Unlock()
	if w.fs.wrote != nil {
		w.fs.wrote(w.path, data, "")
	}
	return nil
}

type readOnly struct{ *bytes.Reader }

func (readOnly) Write([]byte) (int, error) { return 0, errors.New("opened for reading") }
func (readOnly) Close() error              { return nil }

type devNull struct{}

func (devNull) Read([]byte) (int, error)    { return 0, io.EOF }
func (devNull) Write(b []byte) (int, error) { return len(b), nil }
func (devNull) Close() error                { return nil }

type simInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (i simInfo) Name() string       { return i.name }
func (i simInfo) Size() int64        { return i.size }
func (i simInfo) Mode() fs.FileMode  { return i.mode }
func (i simInfo) ModTime() time.Time { return time.Time{} }
func (i simInfo) IsDir() bool        { return i.mode.IsDir() }
func (i simInfo) Sys() any           { return nil }

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
