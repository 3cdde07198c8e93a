package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// A spec can bring the installed system's own configuration into the
// bundle: NixOS modules (files and folders) imported by configuration.nix,
// or a whole flake folder installed with nixos-install --flake. These files
// travel beside kexec-install.sh (the bundle's modules/ and flake/ folders),
// are listed in SHA256SUMS and in the script with their sha256, and are
// checked before they are used. Every one is bounded as a spec is: only
// regular files, nothing that leaves the folder of the spec that names it,
// caps on sizes and counts, UTF-8 text without private key material.
const (
	// MaxModuleFileBytes caps one file; a NixOS module is a few KB.
	MaxModuleFileBytes = 1 << 20
	// MaxModuleTreeBytes and MaxModuleFiles cap everything one spec brings:
	// its modules and its flake together.
	MaxModuleTreeBytes = 16 << 20
	MaxModuleFiles     = 1024
	// maxModuleDepth caps how deep folders nest inside a module or flake folder.
	maxModuleDepth = 16
)

// Bundle folders of the files a spec brings.
const (
	ModulesFolder = "modules"
	FlakeFolder   = "flake"
)

// moduleRef is one entry of a modules list as written, with the spec file
// that lists it.
type moduleRef struct {
	listed string
	from   string
	index  int
}

// UserFile is one file a spec brings into the bundle.
type UserFile struct {
	// Name is the path in the bundle: "modules/users.nix", "flake/flake.nix".
	Name string
	// Target is where kexec-install.sh writes it, relative to /etc/nixos of
	// the installed system: the same as Name for a module, the path inside
	// the flake folder for the flake's files.
	Target string
	// Source is the file read; Shown is its path as the spec names it
	// (relative to the spec), for messages.
	Source, Shown string
	Data          []byte
	SHA256        string
	Mode          uint32 // 0o755 when the source is executable by its owner, else 0o644
}

// Module is one of the spec's own NixOS modules: a file, or a folder whose
// default.nix is the module and whose tree is kept, so relative imports
// inside it work.
type Module struct {
	// Name is its name under modules/: the file's or the folder's.
	Name   string
	Folder bool
	// From is the spec file that lists it, Key its entry ("modules[0]").
	From, Key string
	Files     []UserFile
}

// Import is the module's path in configuration.nix.
func (m Module) Import() string { return "./" + ModulesFolder + "/" + m.Name }

// UserFlake is the spec's own flake: a folder with flake.nix and flake.lock,
// whose nixosConfigurations.HOST is installed.
type UserFlake struct {
	// Listed is flake.path as the spec wrote it; Source the folder read.
	Listed, Source string
	From           string // the spec file that names it
	Files          []UserFile
	// Inputs are the sources flake.lock pins, in its node order.
	Inputs []FlakeInput
	// NixpkgsRev is the revision the lock pins for the input named
	// nixpkgs, NixpkgsRef what that input follows (e.g. "nixos-24.11");
	// either may be empty.
	NixpkgsRev, NixpkgsRef string
}

// FlakeInput is one source a flake.lock pins.
type FlakeInput struct {
	Name string // the lock's node name
	// Ref is the locked source as a flake reference, for messages.
	Ref string
	// SSH: fetched over SSH, from Host, which needs a key the installer
	// can use and the host's key in its known_hosts.
	SSH  bool
	Host string
}

// GeneratedDir is where kexec-install.sh writes nixplan's own files in the
// user's flake, relative to the flake folder: the module the flake imports
// (configuration.nix), hardware-configuration.nix and nixplan-network.nix.
func (f *UserFlake) GeneratedDir(host string) string { return "nixplan/" + host }

// generatedFiles are the files kexec-install.sh writes into GeneratedDir; a
// copy of them in the user's folder (copied back after an install) is left
// out of the bundle, since the install writes them anew.
var generatedFiles = []string{ConfigurationFile, "hardware-configuration.nix", "nixplan-network.nix"}

// bundled collects what one spec brings, bounded as a whole.
type bundled struct {
	problems Problems
	bytes    int64
	files    int
}

// readBundled reads the modules and the flake folder a loaded spec names.
func readBundled(spec *Spec) Problems {
	b := &bundled{}
	seen := map[string]bool{}
	names := map[string]string{} // name under modules/ → who took it
	for _, ref := range spec.moduleRefs {
		key := fmt.Sprintf("modules[%d]", ref.index)
		m, ok := b.readModule(ref, key, seen)
		if !ok || m == nil {
			continue
		}
		if other, taken := names[m.Name]; taken {
			b.refuse(ref.from, key, "rename one of them, or put both in one folder",
				"%s: another module is named %s too (%s); each module gets its own name under modules/", ref.listed, m.Name, other)
			continue
		}
		names[m.Name] = key + " of " + ref.from
		spec.userModules = append(spec.userModules, *m)
	}
	if spec.Flake.Path != "" {
		from := spec.File
		if o, ok := spec.Origin["flake.path"]; ok {
			from = o
		}
		spec.userFlake = b.readFlake(from, spec.Flake.Path, spec.Host.Name)
	}
	spec.bundledRead = true
	return b.problems
}

func (b *bundled) refuse(from, key, hint, format string, args ...any) {
	b.problems = append(b.problems, Problem{File: from, Key: key, Msg: fmt.Sprintf(format, args...), Hint: hint})
}

// readModule reads one modules entry; a module already read (listed by two
// specs of one tree) gives nil and true.
func (b *bundled) readModule(ref moduleRef, key string, seen map[string]bool) (*Module, bool) {
	root, source, fi, ok := b.resolve(ref.from, key, ref.listed, false)
	if !ok {
		return nil, false
	}
	if seen[source] {
		return nil, true
	}
	seen[source] = true
	name := filepath.Base(source)
	if !moduleNameRE.MatchString(name) {
		b.refuse(ref.from, key, `rename it to letters, digits and "._+-", e.g. "users.nix"`,
			"%s: %q is not a name configuration.nix can import as a path", ref.listed, name)
		return nil, false
	}
	m := &Module{Name: name, From: ref.from, Key: key, Folder: fi.IsDir()}
	bundleDir := ModulesFolder + "/" + name
	if !m.Folder {
		if !strings.HasSuffix(name, ".nix") {
			b.refuse(ref.from, key, "a module is a .nix file, or a folder with a default.nix",
				"%s is not a .nix file", ref.listed)
			return nil, false
		}
		f, ok := b.readFile(ref.from, key, root, ref.listed, source)
		if !ok {
			return nil, false
		}
		f.Name, f.Target, f.Shown = bundleDir, bundleDir, ref.listed
		m.Files = []UserFile{f}
		return m, true
	}
	files, ok := b.readFolder(ref.from, key, root, ref.listed, source, "", 0, nil)
	if !ok {
		return nil, false
	}
	hasDefault := false
	for i := range files {
		hasDefault = hasDefault || files[i].Target == "default.nix"
		files[i].Name = bundleDir + "/" + files[i].Target
		files[i].Target = files[i].Name
	}
	if !hasDefault {
		b.refuse(ref.from, key, "add a default.nix that imports the folder's other files; configuration.nix imports the folder through it",
			"%s: the folder has no default.nix", ref.listed)
		return nil, false
	}
	m.Files = files
	return m, true
}

// readFlake reads the user's flake folder.
func (b *bundled) readFlake(from, listed, host string) *UserFlake {
	const key = "flake.path"
	root, source, fi, ok := b.resolve(from, key, listed, true)
	if !ok {
		return nil
	}
	if !fi.IsDir() {
		b.refuse(from, key, "name the folder that holds flake.nix and flake.lock", "%s is not a folder", listed)
		return nil
	}
	skip := map[string]bool{}
	for _, g := range generatedFiles {
		skip[(&UserFlake{}).GeneratedDir(host)+"/"+g] = true
	}
	files, ok := b.readFolder(from, key, root, listed, source, "", 0, skip)
	if !ok {
		return nil
	}
	uf := &UserFlake{Listed: listed, Source: source, From: from}
	var lock []byte
	have := map[string]bool{}
	for i := range files {
		have[files[i].Target] = true
		if files[i].Target == "flake.lock" {
			lock = files[i].Data
		}
		files[i].Name = FlakeFolder + "/" + files[i].Target
	}
	switch {
	case !have["flake.nix"]:
		b.refuse(from, key, "name the folder that holds your flake.nix", "%s has no flake.nix", listed)
		return nil
	case !have["flake.lock"]:
		b.refuse(from, key, "run nix flake lock in the folder and commit flake.lock: the install uses the inputs it pins and locks nothing itself",
			"%s has no flake.lock", listed)
		return nil
	}
	inputs, rev, ref, msg := parseFlakeLock(lock)
	if msg != "" {
		b.refuse(from, key, "run nix flake lock in the folder again", "%s: %s", path.Join(listed, "flake.lock"), msg)
		return nil
	}
	uf.Files, uf.Inputs, uf.NixpkgsRev, uf.NixpkgsRef = files, inputs, rev, ref
	return uf
}

// moduleNameRE is what a module's file or folder name may hold to be a Nix
// path literal (./modules/NAME) in configuration.nix.
var moduleNameRE = regexp.MustCompile(`^[A-Za-z0-9_+-][A-Za-z0-9._+-]*$`)

// resolve finds a path a spec lists, relative to the spec's folder, and
// refuses one that is not there or leads out of that folder, by its name
// or through a symbolic link. It returns the spec's folder and the path,
// both with their links resolved. dot allows the spec's folder itself.
func (b *bundled) resolve(from, key, listed string, dot bool) (root, source string, fi fs.FileInfo, ok bool) {
	inside := `name a file or folder inside the spec's folder; to share one, list it in an include that lies beside it`
	if what := unprintable(listed); what != "" {
		b.refuse(from, key, "rename it to printable characters", "%q holds %s", clip(listed), what)
		return "", "", nil, false
	}
	clean := filepath.Clean(listed)
	switch {
	case listed == "":
		b.refuse(from, key, inside, "is empty")
		return "", "", nil, false
	case filepath.IsAbs(listed):
		b.refuse(from, key, inside, "%s is an absolute path; paths in a spec are relative to it", clip(listed))
		return "", "", nil, false
	case clean == ".." || strings.HasPrefix(clean, ".."+string(filepath.Separator)):
		b.refuse(from, key, inside, "%s leaves the folder of %s", clip(listed), filepath.Base(from))
		return "", "", nil, false
	case clean == "." && !dot:
		b.refuse(from, key, inside, "%q is the spec's own folder", clip(listed))
		return "", "", nil, false
	}
	dir, err := filepath.Abs(filepath.Dir(from))
	if err == nil {
		root, err = filepath.EvalSymlinks(dir)
	}
	if err != nil {
		b.refuse(from, key, "", "%s: %s", dir, readErrorText(err))
		return "", "", nil, false
	}
	source = filepath.Join(dir, clean)
	if _, err := os.Lstat(source); err != nil {
		b.refuse(from, key, "check the path: it is relative to the spec that lists it", "%s: %s", clip(listed), readErrorText(err))
		return "", "", nil, false
	}
	real, ok := b.inTree(from, key, root, listed, source)
	if !ok {
		return "", "", nil, false
	}
	if fi, err = os.Stat(real); err != nil {
		b.refuse(from, key, "", "%s: %s", clip(listed), readErrorText(err))
		return "", "", nil, false
	}
	return root, real, fi, true
}

// inTree resolves the links of p (shown as shown) and refuses a path
// outside root.
func (b *bundled) inTree(from, key, root, shown, p string) (string, bool) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		b.refuse(from, key, "", "%s: %s", shown, readErrorText(err))
		return "", false
	}
	// A FIFO would block the read, a device never end it.
	if fi, err := os.Stat(real); err == nil && !fi.Mode().IsRegular() && !fi.IsDir() {
		what := fmt.Sprintf("%s is %s", shown, fileKind(fi.Mode()))
		if li, err := os.Lstat(p); err == nil && li.Mode()&fs.ModeSymlink != 0 {
			what = fmt.Sprintf("%s links to %s, %s", shown, real, fileKind(fi.Mode()))
		}
		b.refuse(from, key, "keep only regular files in a module or flake folder", "%s, not a regular file", what)
		return "", false
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		b.refuse(from, key, "copy the file into the spec's folder instead of linking to it, or remove the link (a result link of nix build, say)",
			"%s links to %s, outside the folder of %s", shown, real, filepath.Base(from))
		return "", false
	}
	return real, true
}

// readFolder reads every regular file under dir (links followed inside the
// spec's folder), in name order, with Target relative to the module or
// flake folder; .git and nixplan bundles inside it are left out, and so are
// the relative paths in skip.
func (b *bundled) readFolder(from, key, root, listed, dir, rel string, depth int, skip map[string]bool) ([]UserFile, bool) {
	if depth > maxModuleDepth {
		b.refuse(from, key, "", "%s: folders nest more than %d deep", path.Join(listed, rel), maxModuleDepth)
		return nil, false
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.refuse(from, key, "", "%s: %s", path.Join(listed, rel), readErrorText(err))
		return nil, false
	}
	var files []UserFile
	for _, e := range entries {
		name := path.Join(rel, e.Name())
		shown := path.Join(listed, name)
		if what := unprintable(e.Name()); what != "" || strings.ContainsRune(e.Name(), '\\') {
			if what == "" {
				what = "a backslash"
			}
			b.refuse(from, key, "rename it to printable characters without backslashes", "%q holds %s", shown, what)
			return nil, false
		}
		if e.Name() == ".git" || skip[name] {
			continue
		}
		p := filepath.Join(dir, e.Name())
		real, ok := b.inTree(from, key, root, shown, p)
		if !ok {
			return nil, false
		}
		fi, err := os.Stat(real)
		if err != nil {
			b.refuse(from, key, "", "%s: %s", shown, readErrorText(err))
			return nil, false
		}
		switch {
		case fi.IsDir():
			if IsBundle(real) {
				continue // a rendered bundle, not configuration
			}
			if real == dir || strings.HasPrefix(dir, real+string(filepath.Separator)) {
				b.refuse(from, key, "remove the link", "%s links to a folder that holds it", shown)
				return nil, false
			}
			sub, ok := b.readFolder(from, key, root, listed, real, name, depth+1, skip)
			if !ok {
				return nil, false
			}
			files = append(files, sub...)
		default:
			f, ok := b.readFile(from, key, root, shown, real)
			if !ok {
				return nil, false
			}
			f.Target, f.Shown = name, shown
			files = append(files, f)
		}
	}
	return files, true
}

// readFile reads one file a spec brings, within the caps, and refuses what
// must not travel: anything but a regular file, text that is not UTF-8, NUL
// bytes, private key material.
func (b *bundled) readFile(from, key, root, shown, p string) (UserFile, bool) {
	if b.files++; b.files > MaxModuleFiles {
		b.refuse(from, key, "keep in the modules and the flake folder only what the installed system needs",
			"%s brings the spec's modules and flake over %d files", shown, MaxModuleFiles)
		return UserFile{}, false
	}
	data, err := ReadRegular(p, MaxModuleFileBytes)
	var mode fs.FileMode
	if err == nil {
		var fi fs.FileInfo
		if fi, err = os.Stat(p); err == nil {
			mode = fi.Mode().Perm()
		}
	}
	if err != nil {
		format := "%s: %s"
		if hint := inputHint(err); hint != "" {
			format = "%s %s" // "is a FIFO, not a regular file", "is N bytes, more than …"
		}
		b.refuse(from, key, inputHint(err), format, shown, readErrorText(err))
		return UserFile{}, false
	}
	if b.bytes += int64(len(data)); b.bytes > MaxModuleTreeBytes {
		b.refuse(from, key, "keep in the modules and the flake folder only what the installed system needs",
			"%s brings the spec's modules and flake over %s together", shown, FormatBinary(MaxModuleTreeBytes))
		return UserFile{}, false
	}
	if i := bytes.IndexByte(data, 0); i >= 0 || !utf8.Valid(data) {
		b.refuse(from, key, "the bundle carries text: keep binary files out of the folder, or fetch them in the module (pkgs.fetchurl)",
			"%s is not UTF-8 text", shown)
		return UserFile{}, false
	}
	for i, line := range strings.Split(string(data), "\n") {
		if LooksPrivate(line) {
			b.refuse(from, key, "keep secrets out of the bundle: provision them after the install (README, Secrets); treat this key as exposed if the file was shared",
				"%s:%d holds private key material", shown, i+1)
			return UserFile{}, false
		}
	}
	sum := sha256.Sum256(data)
	f := UserFile{Source: p, Data: data, SHA256: hex.EncodeToString(sum[:]), Mode: 0o644}
	if mode&0o100 != 0 {
		f.Mode = 0o755
	}
	return f, true
}

// inputHint is the hint for a file ReadRegular refused.
func inputHint(err error) string {
	var nr *NotRegularError
	var tl *TooLargeError
	switch {
	case errors.As(err, &nr):
		return "keep only regular files in a module or flake folder"
	case errors.As(err, &tl):
		return "a NixOS module is a few KB; keep large files out of the bundle, or fetch them in the module (pkgs.fetchurl)"
	}
	return ""
}

// BundledFiles are the files the spec brings, in bundle order.
func (p *Plan) BundledFiles() []UserFile {
	var out []UserFile
	for _, m := range p.Modules {
		out = append(out, m.Files...)
	}
	if p.Flake != nil {
		out = append(out, p.Flake.Files...)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// BundledFoldersList is BundledFolders as words after a space each, for a
// list of files to copy (" modules").
func (p *Plan) BundledFoldersList() string {
	var b strings.Builder
	for _, f := range p.BundledFolders() {
		b.WriteString(" " + f)
	}
	return b.String()
}

// BundledFolders are the top folders of the bundle that hold the files the
// spec brings ("modules", "flake"), for the checklist's copy commands.
func (p *Plan) BundledFolders() []string {
	var out []string
	if len(p.Modules) > 0 {
		out = append(out, ModulesFolder)
	}
	if p.Flake != nil {
		out = append(out, FlakeFolder)
	}
	return out
}

// validateBundled puts the modules and the flake Load read into the Plan
// and refuses the combinations that cannot work.
func validateBundled(ps *problems, spec *Spec, p *Plan) {
	moduleFile := func() string {
		if len(spec.moduleRefs) > 0 {
			return spec.moduleRefs[0].from
		}
		return spec.File
	}
	if (len(spec.moduleRefs) > 0 || spec.Flake.Path != "") && !spec.bundledRead {
		ps.add("modules", "load the spec with plan.Load, which reads the files it names", "the spec names files that were not read")
		return
	}
	p.Modules = spec.userModules
	if spec.Flake.Path == "" {
		return
	}
	if spec.Flake.NixpkgsRev != "" {
		ps.add("flake.path", "leave flake.nixpkgs_rev out: your flake.lock pins nixpkgs", "cannot go with flake.nixpkgs_rev, the flake nixplan writes")
	}
	if spec.Channel.URL != "" || spec.Channel.SHA256 != "" {
		ps.add("flake.path", "leave [channel] out: your flake.lock pins nixpkgs", "cannot go with a pinned [channel]: install from one or the other")
	}
	if len(spec.moduleRefs) > 0 {
		ps.list = append(ps.list, Problem{File: moduleFile(), Key: "modules",
			Msg:  "cannot go with flake.path: configuration.nix, which imports them, is a module of your flake there",
			Hint: "put the modules in your flake's folder and import them from its nixosConfigurations." + spec.Host.Name})
	}
	f := spec.userFlake
	if f == nil {
		return
	}
	p.Flake = f
	p.Nixpkgs.UserFlake, p.Nixpkgs.UserFlakeRev = true, f.NixpkgsRev
	if m := releaseRefRE.FindStringSubmatch(f.NixpkgsRef); m != nil && p.Release.Version != "" && m[1] != p.Release.Version {
		ps.warn("flake.path", fmt.Sprintf("set host.nixos = %q, or point the flake's nixpkgs at nixos-%s", m[1], p.Release.Version),
			"the flake's nixpkgs follows %s, but host.nixos is %s: nixplan's module uses %s's option names", f.NixpkgsRef, p.Release.Version, p.Release.Version)
	}
}

// releaseRefRE matches a nixpkgs branch of a release, such as nixos-24.11.
var releaseRefRE = regexp.MustCompile(`^nixos-([0-9]{2}\.(?:05|11))(?:-small)?$`)

// SSHHosts are the hosts the flake's inputs are fetched from over SSH,
// sorted, each once.
func (f *UserFlake) SSHHosts() []string {
	var hosts []string
	for _, in := range f.Inputs {
		if in.SSH && in.Host != "" && !slices.Contains(hosts, in.Host) {
			hosts = append(hosts, in.Host)
		}
	}
	sort.Strings(hosts)
	return hosts
}

// FetchHint is what kexec-install.sh says when it cannot fetch every source
// of the flake: what to fix for a lock that lacks an input, and for each
// input fetched over SSH, how the installer gets a key and the host's.
func (f *UserFlake) FetchHint() string {
	hint := "cannot fetch every source of the flake (see the error above); nothing was changed: " +
		"for a lock that lacks an input, run nix flake lock on your laptop, commit flake.lock and render the bundle again"
	for _, in := range f.Inputs {
		if in.SSH {
			hint += fmt.Sprintf("; %s is fetched over SSH from %s: log in with ssh -A so the installer can use your agent's key, and ssh-keyscan %s >> /root/.ssh/known_hosts", in.Name, in.Host, in.Host)
		}
	}
	return hint
}
