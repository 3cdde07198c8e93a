package plan

import (
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"sort"
	"strings"
)

// flakeLock is the part of a flake.lock nixplan reads. The format, from
// NixOS/nix 03139d0, src/libexpr/flake/lockfile.cc: a JSON object with
// "nodes" (each non-root node has "locked" and "original" attributes of its
// source, "inputs" map an input to a node or, for follows, to a path of
// input names), "root" naming the root node, and "version", which Nix reads
// from 5 to 7 and writes as 7.
type flakeLock struct {
	Nodes   map[string]lockNode `json:"nodes"`
	Root    string              `json:"root"`
	Version int                 `json:"version"`
}

type lockNode struct {
	// Inputs map an input's name to a node name, or to a path of input
	// names for an input that follows another.
	Inputs   map[string]json.RawMessage `json:"inputs"`
	Locked   map[string]any             `json:"locked"`
	Original map[string]any             `json:"original"`
}

// parseFlakeLock lists the sources a flake.lock pins, in node name order,
// and what it pins for the root's input named nixpkgs; msg says what is
// wrong with a lock that cannot be read.
func parseFlakeLock(data []byte) (inputs []FlakeInput, nixpkgsRev, nixpkgsRef, msg string) {
	var lock flakeLock
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, "", "", "is not JSON: " + err.Error()
	}
	root, ok := lock.Nodes[lock.Root]
	if lock.Root == "" || !ok {
		return nil, "", "", "is not a flake lock file: it names no root node"
	}
	if lock.Version < 5 || lock.Version > 7 {
		return nil, "", "", fmt.Sprintf("has lock file version %d; Nix and nixplan read versions 5 to 7", lock.Version)
	}
	names := make([]string, 0, len(lock.Nodes))
	for name := range lock.Nodes {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		node := lock.Nodes[name]
		if name == lock.Root || node.Locked == nil {
			continue
		}
		in, problem := lockedInput(name, node.Locked)
		if problem == "" && (Printable(in.Name) != in.Name || Printable(in.Ref) != in.Ref) {
			problem = fmt.Sprintf("input %q holds characters that are not printable", Printable(in.Name))
		}
		if problem != "" {
			return nil, "", "", problem
		}
		inputs = append(inputs, in)
	}
	var target string
	if raw, ok := root.Inputs["nixpkgs"]; ok && json.Unmarshal(raw, &target) == nil {
		if node, ok := lock.Nodes[target]; ok {
			nixpkgsRev, _ = node.Locked["rev"].(string)
			nixpkgsRef, _ = node.Original["ref"].(string)
		}
	}
	return inputs, nixpkgsRev, nixpkgsRef, ""
}

// lockedInput describes one locked source as a flake reference (Nix's
// flake reference syntax: github:OWNER/REPO/REV, git+URL?rev=REV, ...).
func lockedInput(name string, locked map[string]any) (FlakeInput, string) {
	str := func(k string) string { s, _ := locked[k].(string); return s }
	in := FlakeInput{Name: name}
	switch typ := str("type"); typ {
	case "github", "gitlab", "sourcehut":
		in.Ref = typ + ":" + str("owner") + "/" + str("repo") + "/" + str("rev")
	case "git", "hg":
		u := str("url")
		in.Ref = typ + "+" + u
		if rev := str("rev"); rev != "" {
			in.Ref += "?rev=" + rev
		}
		if p, err := url.Parse(u); err == nil && (p.Scheme == "ssh" || strings.HasSuffix(p.Scheme, "+ssh")) {
			in.SSH, in.Host = true, p.Hostname()
		} else if _, rest, ok := strings.Cut(u, "@"); ok && !strings.Contains(u, "://") {
			// scp-like git@host:path
			in.SSH, in.Host = true, strings.SplitN(rest, ":", 2)[0]
		}
		if strings.HasPrefix(u, "file://") || strings.HasPrefix(u, "/") {
			return in, fmt.Sprintf("input %q is the local repository %s, which the server does not have", name, u)
		}
	case "tarball", "file":
		in.Ref = str("url")
		if strings.HasPrefix(in.Ref, "file://") {
			return in, fmt.Sprintf("input %q is the local file %s, which the server does not have", name, in.Ref)
		}
	case "path":
		p := str("path")
		if filepath.IsAbs(p) {
			return in, fmt.Sprintf("input %q is the path %s on this machine, which the server does not have; a path input inside the flake folder travels with it", name, p)
		}
		in.Ref = "path:" + p
	case "":
		return in, fmt.Sprintf("input %q has no locked type", name)
	default:
		in.Ref = typ
	}
	return in, ""
}
