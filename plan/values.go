package plan

import (
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"unicode"
	"unicode/utf8"
)

// validateText refuses, in every string of the spec, what no value may hold:
// each reaches a script, configuration.nix or checklist.md, and one that is
// not printable (a line break, NUL, ESC, a bidirectional override) is either
// impossible there (NUL) or shows the reviewer other text than runs. A key
// refused here gets no other problem: it would only repeat this one.
func validateText(ps *problems, spec *Spec) {
	var walk func(key string, v reflect.Value)
	walk = func(key string, v reflect.Value) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(key, v.Elem())
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				tag := v.Type().Field(i).Tag.Get("toml")
				if tag == "" || tag == "-" || !v.Type().Field(i).IsExported() {
					continue
				}
				sub := tag
				if key != "" {
					sub = key + "." + tag
				}
				walk(sub, v.Field(i))
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(fmt.Sprintf("%s[%d]", key, i), v.Index(i))
			}
		case reflect.String:
			if what := unprintable(v.String()); what != "" {
				hint := fmt.Sprintf("a string is one line of printable text: remove it from %q", clip(v.String()))
				if strings.HasPrefix(key, "ssh.authorized_keys[") && strings.ContainsAny(v.String(), "\r\n") {
					hint = "write one key per list entry: split it into separate strings"
				}
				ps.add(key, hint, "holds %s; no value may, since each reaches a script, configuration.nix or checklist.md", what)
				ps.refused[key] = true
			}
		}
	}
	walk("", reflect.ValueOf(spec).Elem())
}

// unprintable names the first character of s that Printable would escape, or
// returns "".
func unprintable(s string) string {
	for i, r := range s {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD"):
			return fmt.Sprintf("the byte 0x%02x, which is not UTF-8", s[i])
		case unicode.IsGraphic(r):
		case r == '\n' || r == '\r':
			return fmt.Sprintf("a line break (%U)", r)
		case unicode.IsControl(r):
			return fmt.Sprintf("the control character %U", r)
		default:
			return fmt.Sprintf("the invisible character %U", r)
		}
	}
	return ""
}

// Linux's limits for a path: NAME_MAX bytes a component, PATH_MAX bytes
// with the final NUL (torvalds/linux 30c0923, include/uapi/linux/limits.h).
const (
	nameMax = 255
	pathMax = 4096
)

// pathLimit says what of p Linux would refuse ("File name too long"), or "".
func pathLimit(p string) string {
	if len(p) >= pathMax {
		return fmt.Sprintf("is %d bytes long; Linux takes paths of at most %d bytes (PATH_MAX, with the final NUL)", len(p), pathMax-1)
	}
	for _, c := range strings.Split(p, "/") {
		if len(c) > nameMax {
			return fmt.Sprintf("has a component of %d bytes (%q); Linux takes at most %d a component (NAME_MAX)", len(c), clip(c), nameMax)
		}
	}
	return ""
}

// interfaceProblem says why Linux, or the installed system, would refuse an
// interface name, or returns "". The kernel's rules (torvalds/linux
// e869e62, net/core/dev.c, dev_valid_name): not empty, shorter than
// IFNAMSIZ (16), not "." or "..", no "/", ":" or white space; and "lo" is
// the loopback device every system already has.
func interfaceProblem(name string) (msg, hint string) {
	const example = `e.g. "eth0", "enp1s0" or, pinned by network.mac, "wan0"`
	switch {
	case name == "." || name == "..":
		return fmt.Sprintf("%q is not an interface name: Linux refuses \".\" and \"..\"", name), "a name of 1 to 15 letters, digits, \"_\", \".\" or \"-\", " + example
	case name == "lo":
		return `"lo" is the loopback interface, not a network card`, "the name of the public network card, " + example
	case len(name) > 15:
		return fmt.Sprintf("%q is %d bytes; Linux interface names have at most 15", clip(name), len(name)), "a shorter name, " + example
	case strings.ContainsAny(name, "/:") || strings.IndexFunc(name, unicode.IsSpace) >= 0:
		return fmt.Sprintf("%q holds %q; Linux interface names hold no \"/\", \":\" or white space", clip(name), string(name[strings.IndexFunc(name, func(r rune) bool { return r == '/' || r == ':' || unicode.IsSpace(r) })])),
			"letters, digits, \"_\", \".\" and \"-\", " + example
	case !ifaceRE.MatchString(name):
		return fmt.Sprintf("%q is not an interface name", clip(name)), `a Linux interface name of 1 to 15 letters, digits, "_", "." or "-", ` + example
	}
	return "", ""
}

// urlProblem says what is wrong with an https URL a script downloads from,
// or returns "". Its message shows the URL with any password hidden.
func urlProblem(raw string) (msg string) {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("%q is not a URL", clip(raw))
	}
	shown := clip(raw)
	if u.User != nil {
		shown = clip(u.Redacted()) // the password stays out of the message
	}
	switch {
	case u.User != nil:
		return fmt.Sprintf("%q holds credentials (user:password@); the URL is written into the scripts and checklist.md, and a download needs none", shown)
	case u.Scheme != "https" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.Opaque != "":
		return fmt.Sprintf("%q is not a plain https URL", shown)
	}
	for _, r := range raw {
		// RFC 3986, 2: unreserved, reserved and "%" are all a URL holds.
		if r >= 0x80 || !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~:/?#[]@!$&'()*+,;=%", r)) {
			return fmt.Sprintf("%q holds %q, which a URL holds only percent-encoded (RFC 3986)", shown, string(r))
		}
	}
	return ""
}
