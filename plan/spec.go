package plan

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
)

// Spec is a host spec as the operator wrote it. Empty fields take defaults in
// Validate; nothing here is trusted until Validate has looked at it.
type Spec struct {
	Provider string      `toml:"provider"`
	Host     HostSpec    `toml:"host"`
	Kexec    KexecSpec   `toml:"kexec"`
	Network  NetworkSpec `toml:"network"`
	Disks    DisksSpec   `toml:"disks"`
	SSH      SSHSpec     `toml:"ssh"`

	// File is the spec's path as given; SHA256 is the hash of its bytes.
	File   string `toml:"-"`
	SHA256 string `toml:"-"`
}

// HostSpec names the machine and the NixOS it gets.
type HostSpec struct {
	Name         string `toml:"name"`
	HostID       string `toml:"host_id"`
	NixOS        string `toml:"nixos"`
	StateVersion string `toml:"state_version"`
}

// KexecSpec says which NixOS installer tarball the rescue system kexecs into.
type KexecSpec struct {
	URL    string `toml:"url"`
	SHA256 string `toml:"sha256"`
}

// NetworkSpec is the installed system's network.
type NetworkSpec struct {
	Interface   string    `toml:"interface"`
	Nameservers []string  `toml:"nameservers"`
	IPv4        *IPv4Spec `toml:"ipv4"`
}

// IPv4Spec is a static IPv4 address with its gateway.
type IPv4Spec struct {
	Address string `toml:"address"`
	Prefix  int    `toml:"prefix"`
	Gateway string `toml:"gateway"`
}

// DisksSpec is the storage layout.
type DisksSpec struct {
	Layout   string        `toml:"layout"`
	Devices  []string      `toml:"devices"`
	Label    string        `toml:"label"`
	BootSize string        `toml:"boot_size"`
	Pool     string        `toml:"pool"`
	Datasets []DatasetSpec `toml:"datasets"`
}

// DatasetSpec is one ZFS dataset, named relative to the pool. A dataset
// without a mountpoint is created but not mounted (a container like the seed's
// rpool/root).
type DatasetSpec struct {
	Name       string `toml:"name"`
	Mountpoint string `toml:"mountpoint"`
}

// SSHSpec holds the public keys that may log in as root.
type SSHSpec struct {
	AuthorizedKeys []string `toml:"authorized_keys"`
}

// Load reads and decodes one spec file. Syntax errors, wrong types and
// unknown keys are returned as Problems with the file and position.
func Load(path string) (*Spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Problems{{File: path, Msg: readErrorText(err)}}
	}
	return Parse(path, data)
}

func readErrorText(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "no such file"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// Parse decodes spec bytes; name is used in problems and the bundle header.
func Parse(name string, data []byte) (*Spec, error) {
	sum := sha256.Sum256(data)
	spec := &Spec{File: name, SHA256: hex.EncodeToString(sum[:])}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, Problems{{File: name, Msg: "contains a NUL byte; a spec is a UTF-8 TOML text file"}}
	}
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(spec)
	if err != nil {
		return nil, Problems{tomlProblem(name, err)}
	}
	var ps Problems
	for _, k := range md.Undecoded() {
		key := k.String()
		p := Problem{File: name, Key: key, Msg: "unknown key"}
		if near := nearestKey(key); near != "" {
			p.Hint = fmt.Sprintf("did you mean %q?", near)
		} else {
			p.Hint = "the spec reference in README.md lists every key"
		}
		ps = append(ps, p)
	}
	if len(ps) > 0 {
		return nil, ps
	}
	return spec, nil
}

var typeErrorRE = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// tomlProblem turns a decoder error into a Problem with a position.
func tomlProblem(file string, err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		p := Problem{File: file, Line: pe.Position.Line, Col: pe.Position.Col, Msg: lowerFirst(pe.Message)}
		if pe.Usage != "" {
			p.Hint = strings.Join(strings.Fields(pe.Usage), " ")
		}
		return p
	}
	// Type mismatches are plain errors that carry line and key in their text.
	if m := typeErrorRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		msg := strings.Replace(m[3], "incompatible types: TOML value has type", "has type", 1)
		msg = strings.Replace(msg, "; destination has type", "; want", 1)
		return Problem{File: file, Line: line, Key: m[2], Msg: msg}
	}
	return Problem{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: ")}
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

// knownKeys lists every dotted key a spec may hold, from Spec's toml tags.
var knownKeys = func() []string {
	var keys []string
	var walk func(prefix string, t reflect.Type)
	walk = func(prefix string, t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := 0; i < t.NumField(); i++ {
			tag := t.Field(i).Tag.Get("toml")
			if tag == "" || tag == "-" {
				continue
			}
			keys = append(keys, prefix+tag)
			walk(prefix+tag+".", t.Field(i).Type)
		}
	}
	walk("", reflect.TypeOf(Spec{}))
	sort.Strings(keys)
	return keys
}()

// nearestKey returns the known key closest to an unknown one, if any is close.
func nearestKey(key string) string {
	best, bestDist := "", 4
	for _, k := range knownKeys {
		// Compare within the same table only: "network.gatway" → "network.gateway"
		// is a useful hint, "disks.name" → "host.name" is not.
		if parentKey(k) != parentKey(key) && !strings.HasSuffix(k, "."+lastKey(key)) {
			continue
		}
		if d := levenshtein(k, key); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

func parentKey(k string) string {
	if i := strings.LastIndexByte(k, '.'); i >= 0 {
		return k[:i]
	}
	return ""
}

func lastKey(k string) string { return k[strings.LastIndexByte(k, '.')+1:] }

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
