package imageref

import (
	"strconv"
	"testing"
)

// TestClassTable holds the constant table to the classes' definitions.
func TestClassTable(t *testing.T) {
	for c := range 256 {
		b := byte(c)
		var want uint8
		switch {
		case 'a' <= b && b <= 'z':
			want = lower | word | tagChar
			if b <= 'f' {
				want |= lowerHex | anyHex
			}
		case 'A' <= b && b <= 'Z':
			want = upper | word | tagChar
			if b <= 'F' {
				want |= anyHex
			}
		case '0' <= b && b <= '9':
			want = digit | lowerHex | anyHex | word | tagChar
		case b == '_':
			want = word | tagChar
		case b == '.', b == '-':
			want = tagChar
		}
		if got := class(b); got != want {
			t.Errorf("class(%s) = %#02x, want %#02x", strconv.QuoteRune(rune(b)), got, want)
		}
	}
}

func TestNameTooLongSaysTheLimit(t *testing.T) {
	if want := "repository name must not be more than " + strconv.Itoa(maxPathLen) + " characters"; ErrNameTooLong.Error() != want {
		t.Errorf("ErrNameTooLong = %q, want %q", ErrNameTooLong, want)
	}
}
