package plan

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestKeyPositions finds keys in every form a spec writes them: a table
// header, a plain key, a dotted key, an inline table, a list of tables (once
// for each entry), and not inside a multi-line string or a comment.
func TestKeyPositions(t *testing.T) {
	data := []byte(strings.Join([]string{
		`provider = "ovh"`, // 1
		`[host]`,           // 2
		`  nam = "x"`,      // 3
		`[network]`,        // 4
		`ipv4 = { address = "a", "pre fix" = 24, gw = { x = 1 } }`, // 5
		`ipv6.gatway = "fe80::1"`,                                  // 6
		`[bogus]`,                                                  // 7
		`[[disks.datasets]]`,                                       // 8
		`mountpont = "/x"`,                                         // 9
		`[[disks.datasets]]`,                                       // 10
		"\tmountpont = '/y'",                                       // 11
		`[ssh]`,                                                    // 12
		`note = """`,                                               // 13
		`hidden = 1`,                                               // 14
		`"""`,                                                      // 15
		`after = 2 # hidden = 3`,                                   // 16
	}, "\n"))
	got := keyPositions(data)
	for _, tc := range []struct {
		key  string
		want []position
	}{
		{"provider", []position{{1, 1}}},
		{"host.nam", []position{{3, 3}}},
		{"network.ipv4.pre fix", []position{{5, 25}}},
		{"network.ipv4.gw.x", []position{{5, 48}}},
		{"network.ipv6.gatway", []position{{6, 1}}},
		{"bogus", []position{{7, 2}}},
		{"disks.datasets.mountpont", []position{{9, 1}, {11, 2}}},
		{"ssh.hidden", nil},
		{"ssh.after", []position{{16, 1}}},
		{"nowhere", nil},
	} {
		if !slices.Equal(got[tc.key], tc.want) {
			t.Errorf("%s: got %v, want %v", tc.key, got[tc.key], tc.want)
		}
	}
}

// TestUnknownKeysEachWhereWritten: an unknown key of a list of tables is
// reported once for each entry, at that entry's line, and a file of many
// unknown keys (not a spec at all) gets the first few and a count.
func TestUnknownKeysEachWhereWritten(t *testing.T) {
	spec := "provider = \"ovh\"\n[[disks.datasets]]\nname = \"a\"\nbogus = 1\n[[disks.datasets]]\nname = \"b\"\nbogus = 2\n"
	_, err := Parse("s.toml", []byte(spec))
	var lines []string
	for _, p := range err.(Problems) {
		lines = append(lines, p.Error())
	}
	want := []string{"s.toml:4:1: disks.datasets.bogus: unknown key", "s.toml:7:1: disks.datasets.bogus: unknown key"}
	if !slices.Equal(lines, want) {
		t.Errorf("got %q, want %q", lines, want)
	}

	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "key%d = %d\n", i, i)
	}
	_, err = Parse("big.toml", []byte(b.String()))
	ps := err.(Problems)
	if len(ps) != maxUnknownKeys+1 || ps[0].Error() != "big.toml:1:1: key0: unknown key" ||
		ps[maxUnknownKeys].Msg != fmt.Sprintf("and %d more unknown keys", 5000-maxUnknownKeys) {
		t.Errorf("got %d problems, first %q, last %q", len(ps), ps[0].Error(), ps[len(ps)-1].Error())
	}
}

// BenchmarkUnknownKeys: finding the positions of many unknown keys is one
// pass over the file, not one a key.
func BenchmarkUnknownKeys(b *testing.B) {
	var s strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&s, "key%d = %d\n", i, i)
	}
	data := []byte(s.String())
	for b.Loop() {
		if _, err := Parse("big.toml", data); err == nil {
			b.Fatal("no error")
		}
	}
}
