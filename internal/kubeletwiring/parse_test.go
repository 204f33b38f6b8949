package kubeletwiring

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseEnvFile(t *testing.T) {
	tests := []struct {
		name, in string
		want     map[string]string // last value of each key
		err      string
	}{
		{name: "double quotes and escapes", in: `A="x \"y\" \$HOME \\ \q"` + "\n", want: map[string]string{"A": `x "y" $HOME \ \q`}},
		{name: "single quotes are literal", in: `A='x \n "y"'` + "\n", want: map[string]string{"A": `x \n "y"`}},
		{name: "unquoted keeps inner blanks, trims trailing", in: "A=--a --b  \t\n", want: map[string]string{"A": "--a --b"}},
		{name: "blanks around key and before value", in: "  A =  v\n", want: map[string]string{"A": "v"}},
		{name: "comments and empty lines", in: "# c\n; c\n\nA=1\n#B=2\n", want: map[string]string{"A": "1"}},
		{name: "continuation", in: "A=one \\\ntwo\n", want: map[string]string{"A": "one two"}},
		{name: "last assignment wins", in: "A=1\nA=2\n", want: map[string]string{"A": "2"}},
		{name: "empty value", in: "A=\nB=\"\"\n", want: map[string]string{"A": "", "B": ""}},
		{name: "no trailing newline", in: "A=1", want: map[string]string{"A": "1"}},
		{name: "CRLF", in: "A=1\r\nB=\"2\"\r\n", want: map[string]string{"A": "1", "B": "2"}},
		{name: "no equals sign", in: "A=1\nnonsense\n", err: "f:2: line has no '='"},
		{name: "export prefix", in: "export A=1\n", err: `f:1: "export A" is not a valid environment variable name`},
		{name: "unclosed quote", in: "A=1\nB=\"open\nC=2\n", err: "f:2: quote opened here is never closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, err := ParseEnvFile("f", []byte(tt.in))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, a := range as {
				got[a.Key] = a.Value
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSplitWordsAndExpand(t *testing.T) {
	words, err := SplitWords(`/usr/bin/kubelet "--a=x y" '--b=$Z' \"c %%d $EXTRA ${ONE}x`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/usr/bin/kubelet", "--a=x y", "--b=$Z", `"c`, "%d", "$EXTRA", "${ONE}x"}
	if !reflect.DeepEqual(words, want) {
		t.Fatalf("splitWords = %q, want %q", words, want)
	}
	env := map[string]EnvValue{"EXTRA": {Value: " --p=1   --q=2 "}, "ONE": {Value: "a b"}}
	var got []string
	for _, w := range Expand(words, env, "") {
		got = append(got, w.Word)
	}
	want = []string{"/usr/bin/kubelet", "--a=x y", "--b=$Z", `"c`, "%d", "--p=1", "--q=2", "a bx"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("expand = %q, want %q", got, want)
	}
	if _, err := SplitWords(`a "b`); err == nil {
		t.Error("unclosed quote accepted")
	}
}

func TestLastFlag(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--image-credential-provider-config=/a"}, "/a"},
		{[]string{"--image-credential-provider-config", "/a"}, "/a"},
		{[]string{"--image-credential-provider-config=/a", "--image-credential-provider-config=/b"}, "/b"},
		{[]string{"--image-credential-provider-config-x=/a"}, ""},
		{[]string{"--", "--image-credential-provider-config=/a"}, ""},
		{[]string{"--image-credential-provider-config"}, ""},
		{[]string{"--image-credential-provider-config=/a", "--v", "2", "--image-credential-provider-config", "/c"}, "/c"},
	}
	for _, tt := range tests {
		if got, _ := LastFlag(tt.args, FlagConfig); got.Value != tt.want {
			t.Errorf("LastFlag(%q) = %q, want %q", tt.args, got.Value, tt.want)
		}
	}
}
