package kubeletwiring

import (
	"strings"
	"testing"
)

// The parsers read files operators write by hand: they must never panic,
// and what they report must be consistent with the input.

func FuzzParseUnit(f *testing.F) {
	f.Add("[Service]\nEnvironment=\"A=1\"\nExecStart=/usr/bin/kubelet \\\n  --v=2 $KUBELET_EXTRA_ARGS\n")
	f.Add("[Service\nA=b\n")
	f.Add("# c\r\n[Service]\r\nExecStart=\r\nExecStart=/x '--a b' \"%%\"\r\n")
	f.Fuzz(func(t *testing.T, data string) {
		ss, err := ParseUnit("u", []byte(data))
		if err != nil {
			return
		}
		lines := strings.Count(data, "\n") + 1
		for _, s := range ss {
			if s.Line < 1 || s.Line > lines {
				t.Fatalf("setting %+v on line %d of a %d-line file", s, s.Line, lines)
			}
			words, err := SplitWords(s.Value)
			if err == nil && len(words) > len(s.Value) {
				t.Fatalf("%d words from %q", len(words), s.Value)
			}
		}
	})
}

func FuzzParseEnvFile(f *testing.F) {
	f.Add("KUBELET_EXTRA_ARGS=\"--node-ip=10.0.0.5 --max-pods=150\"\n")
	f.Add("A=1\r\nB='x y'\r\n# c\r\nC=\"q\\\"\" \\\n more\n")
	f.Add("A=\"open\n")
	f.Fuzz(func(t *testing.T, data string) {
		as, err := ParseEnvFile("f", []byte(data))
		if err != nil {
			return
		}
		end := 0
		for _, a := range as {
			if a.Start < end || a.End < a.Start || a.End > len(data) {
				t.Fatalf("assignment %q spans [%d,%d) after %d in %d bytes", a.Key, a.Start, a.End, end, len(data))
			}
			end = a.End
			if !strings.Contains(data[a.Start:a.End], a.Key) {
				t.Fatalf("span of %q does not hold its key: %q", a.Key, data[a.Start:a.End])
			}
			if strings.HasSuffix(data[a.Start:a.End], "\r") && strings.HasPrefix(data[a.End:], "\n") {
				t.Fatalf("span of %q ends inside a CRLF", a.Key)
			}
		}
	})
}

func FuzzParseRancherConfig(f *testing.F) {
	f.Add("node-name: a\nkubelet-arg:\n  - max-pods=200\n")
	f.Add("image-credential-provider-config: /x\nkubelet-arg+: image-credential-provider-bin-dir=/y\n")
	f.Add("- a\n- b\n")
	f.Fuzz(func(t *testing.T, data string) {
		m, err := ParseRancherConfig("c.yaml", []byte(data))
		if err != nil {
			return
		}
		for _, k := range []string{"kubelet-arg", "kubelet-arg+"} {
			for _, w := range KubeletArgWords(m[k]) {
				if !strings.HasPrefix(w, "--") {
					t.Fatalf("kubelet-arg word %q", w)
				}
			}
		}
	})
}
