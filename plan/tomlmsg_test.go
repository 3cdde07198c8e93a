package plan

import (
	"strings"
	"testing"
)

// TestKeyPosition finds keys in every form a spec writes them: a table
// header, a plain key, a dotted key, an inline table, a list of tables, and
// not inside a multi-line string.
func TestKeyPosition(t *testing.T) {
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
		`[ssh]`,                                                    // 10
		`note = """`,                                               // 11
		`hidden = 1`,                                               // 12
		`"""`,                                                      // 13
		`after = 2 # hidden = 3`,                                   // 14
	}, "\n"))
	for _, tc := range []struct {
		key       string
		line, col int
	}{
		{"provider", 1, 1},
		{"host.nam", 3, 3},
		{"network.ipv4.pre fix", 5, 25},
		{"network.ipv4.gw.x", 5, 48},
		{"network.ipv6.gatway", 6, 1},
		{"bogus", 7, 2},
		{"disks.datasets.mountpont", 9, 1},
		{"ssh.hidden", 0, 0},
		{"ssh.after", 14, 1},
		{"nowhere", 0, 0},
	} {
		line, col := keyPosition(data, strings.Split(tc.key, "."))
		if line != tc.line || col != tc.col {
			t.Errorf("%s: got %d:%d, want %d:%d", tc.key, line, col, tc.line, tc.col)
		}
	}
}
