package simulate

import (
	"io"
	"os"
	"testing"
)

// TestSimFSReadShares: read hands out a file's bytes without copying them, so
// a copy of a file (cp) and the file itself must still grow apart: appending
// to either leaves the other as it was.
func TestSimFSReadShares(t *testing.T) {
	v := newSimFS()
	src := make([]byte, 0, 64) // room to grow in place
	src = append(src, "first\n"...)
	v.put("/root/a", src, 0o644)
	data, err := v.read("/root/a")
	if err != nil {
		t.Fatal(err)
	}
	if err := v.write("/root/b", data, 0o644); err != nil {
		t.Fatal(err)
	}
	appendTo := func(p, s string) {
		t.Helper()
		w, err := v.open(p, os.O_WRONLY|os.O_APPEND)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, s); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	appendTo("/root/b", "to b\n")
	appendTo("/root/a", "to a\n")
	for p, want := range map[string]string{"/root/a": "first\nto a\n", "/root/b": "first\nto b\n"} {
		got, err := v.read(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if string(data) != "first\n" {
		t.Errorf("the bytes read first changed to %q", data)
	}
}
