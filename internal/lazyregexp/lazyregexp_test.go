package lazyregexp

import "testing"

func TestCompilesOnFirstUse(t *testing.T) {
	r := New(`^a(b+)$`)
	if r.rx != nil {
		t.Fatal("compiled before first use")
	}
	if !r.MatchString("abb") || r.MatchString("ac") {
		t.Fatal("MatchString disagrees with the expression")
	}
	if m := r.FindStringSubmatch("abbb"); len(m) != 2 || m[1] != "bbb" {
		t.Fatalf("FindStringSubmatch = %q", m)
	}
	if m := r.FindSubmatch([]byte("ab")); len(m) != 2 || string(m[1]) != "b" {
		t.Fatalf("FindSubmatch = %q", m)
	}
	if got := New(`b`).FindAllStringIndex("abcb", -1); len(got) != 2 || got[1][0] != 3 {
		t.Fatalf("FindAllStringIndex = %v", got)
	}
	if r.Regexp().String() != `^a(b+)$` {
		t.Fatalf("Regexp() = %v", r.Regexp())
	}
}

func TestBadExpressionPanicsOnFirstUse(t *testing.T) {
	r := New(`(`) // no panic here: nothing is compiled yet
	defer func() {
		if recover() == nil {
			t.Fatal("a bad expression did not panic on first use")
		}
	}()
	r.MatchString("x")
}
