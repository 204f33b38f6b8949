package nodesetup

import (
	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"math/rand"
	"strconv"
	"strings"
	"testing"
)

func TestSetEnvVarKeepsTheRest(t *testing.T) {
	in := "# header\nA=1\nKUBELET_EXTRA_ARGS=--v=2 \\\n  --max-pods=10\nB='x'\n"
	as, err := kubeletwiring.ParseEnvFile("f", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	out := string(setEnvVar([]byte(in), as, "KUBELET_EXTRA_ARGS", `--v=2 "q" $x`))
	want := "# header\nA=1\nKUBELET_EXTRA_ARGS=\"--v=2 \\\"q\\\" \\$x\"\nB='x'\n"
	if out != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	back, err := kubeletwiring.ParseEnvFile("f", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := kubeletwiring.LookupEnv(back, "KUBELET_EXTRA_ARGS"); a.Value != `--v=2 "q" $x` {
		t.Errorf("round trip: %q", a.Value)
	}
	// Appending to a file whose last line has no newline.
	if got := string(setEnvVar([]byte("A=1"), nil, "K", "v")); got != "A=1\nK=\"v\"\n" {
		t.Errorf("append: %q", got)
	}
}

func TestWithFlags(t *testing.T) {
	ours := ourFlags("/etc/c.yaml", "/opt/bin")
	tail := " --image-credential-provider-config=/etc/c.yaml --image-credential-provider-bin-dir=/opt/bin"
	tests := []struct{ in, want, dropped string }{
		{"", strings.TrimPrefix(tail, " "), ""},
		{"  ", strings.TrimPrefix(tail, " "), ""},
		{"--v=2  --max-pods=5 ", "--v=2  --max-pods=5" + tail, ""},
		{"--image-credential-provider-config /old.yaml --v=2", "--v=2" + tail, "/old.yaml"},
		{"--image-credential-provider-bin-dir=/usr/local/bin --v=2 --image-credential-provider-config=/etc/c.yaml", "--v=2" + tail, "/usr/local/bin"},
		{"--v=2" + tail, "--v=2" + tail, ""},
	}
	for _, tt := range tests {
		got, dropped := withFlags(tt.in, ours)
		var d []string
		for _, o := range dropped {
			d = append(d, o.Value)
		}
		if got != tt.want || strings.Join(d, ",") != tt.dropped {
			t.Errorf("withFlags(%q) = %q dropped %q, want %q dropped %q", tt.in, got, d, tt.want, tt.dropped)
		}
	}
}

func TestSetYAMLKeys(t *testing.T) {
	set := map[string]string{flagBinDir: "/opt/bin", flagConfig: "/etc/c.yaml"}
	tests := []struct{ name, in, want, err string }{
		{name: "append", in: "a: 1\n", want: "a: 1\n# Added by 'ecr-credential-provider install' (the kubelet's image credential provider).\nimage-credential-provider-bin-dir: /opt/bin\nimage-credential-provider-config: /etc/c.yaml\n"},
		{name: "empty file", in: "", want: "# Added by 'ecr-credential-provider install' (the kubelet's image credential provider).\nimage-credential-provider-bin-dir: /opt/bin\nimage-credential-provider-config: /etc/c.yaml\n"},
		{name: "replace in place, block value and comments kept",
			in:   "# top\n\"image-credential-provider-bin-dir\": >-\n  /old\n  /path\n\n# next\nimage-credential-provider-config: '/x' # trailing\nb: [1, 2]\n",
			want: "# top\nimage-credential-provider-bin-dir: /opt/bin\n\n# next\nimage-credential-provider-config: /etc/c.yaml\nb: [1, 2]\n"},
		{name: "flow mapping", in: "{a: 1, b: 2}\n", err: "does not allow a safe text edit"},
		{name: "two documents", in: "a: 1\n---\nb: 2\n", err: "more than one YAML document"},
		{name: "leading document marker is fine", in: "---\na: 1\n", want: "---\na: 1\n# Added by 'ecr-credential-provider install' (the kubelet's image credential provider).\nimage-credential-provider-bin-dir: /opt/bin\nimage-credential-provider-config: /etc/c.yaml\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			old, err := kubeletwiring.ParseRancherConfig("c.yaml", []byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			got, err := setYAMLKeys("c.yaml", []byte(tt.in), old, set)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// applyUnified applies a unified diff of one file to a, as patch would.
func applyUnified(t *testing.T, a, diff string) string {
	t.Helper()
	src := diffLines(a)
	lines := diffLines(diff)
	var out []string
	pos := 0
	for i := 2; i < len(lines); {
		var aStart int
		h := strings.TrimSuffix(lines[i], "\n")
		f := strings.Fields(h) // @@ -a,b +c,d @@
		aStart, _ = strconv.Atoi(strings.Split(strings.TrimPrefix(f[1], "-"), ",")[0])
		if strings.HasSuffix(f[1], ",0") {
			aStart++ // an empty range names the line before it
		}
		for pos < aStart-1 {
			out = append(out, src[pos])
			pos++
		}
		i++
		for i < len(lines) && !strings.HasPrefix(lines[i], "@@") {
			l := lines[i]
			i++
			noNL := i < len(lines) && strings.HasPrefix(lines[i], `\ No newline`)
			body := l[1:]
			if noNL {
				body = strings.TrimSuffix(body, "\n")
				i++
			}
			switch l[0] {
			case ' ':
				out = append(out, body)
				pos++
			case '-':
				pos++
			case '+':
				out = append(out, body)
			}
		}
	}
	out = append(out, src[pos:]...)
	return strings.Join(out, "")
}

func TestUnifiedDiff(t *testing.T) {
	if d := unifiedDiff("a", "b", []byte("x\n"), []byte("x\n")); d != "" {
		t.Errorf("equal inputs: %q", d)
	}
	got := unifiedDiff("a", "b", []byte("1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"), []byte("1\n2\nthree\n4\n5\n6\n7\n8\n9\n10\n11\n12\n13"))
	want := "--- a\n+++ b\n@@ -1,6 +1,6 @@\n 1\n 2\n-3\n+three\n 4\n 5\n 6\n@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+13\n\\ No newline at end of file\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// Random edits: the diff, applied, gives the new text back.
	r := rand.New(rand.NewSource(1))
	words := []string{"a\n", "b\n", "c\n", "d\n", "e"}
	gen := func() string {
		var b strings.Builder
		for n := r.Intn(30); n > 0; n-- {
			b.WriteString(words[r.Intn(len(words)-1)])
		}
		if r.Intn(3) == 0 {
			b.WriteString(words[len(words)-1])
		}
		return b.String()
	}
	for i := 0; i < 500; i++ {
		a, b := gen(), gen()
		d := unifiedDiff("a", "b", []byte(a), []byte(b))
		if a == b {
			continue
		}
		if got := applyUnified(t, a, d); got != b {
			t.Fatalf("diff of %q -> %q does not apply:\n%s\ngave %q", a, b, d, got)
		}
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	n, err := openNodeFS(root)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	mk := func(p string) {
		if err := n.root.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("usr/lib/systemd")
	mk("data/real")
	n.root.Symlink("usr/lib", "lib")
	n.root.Symlink("/data/real", "abs")
	n.root.Symlink("../../../..", "up")
	n.root.Symlink("loop", "loop")
	for in, want := range map[string]string{
		"/lib/systemd/x": "usr/lib/systemd/x",
		"/abs/file":      "data/real/file",
		"/new/dir/file":  "new/dir/file",
		"/":              ".",
		"/usr/../etc/x":  "etc/x",
	} {
		got, err := n.resolve(in)
		if err != nil || got != want {
			t.Errorf("resolve(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := n.resolve("/up/etc/passwd"); err == nil || !strings.Contains(err.Error(), "outside the root") {
		t.Errorf("escape: %v", err)
	}
	if _, err := n.resolve("/loop/x"); err == nil || !strings.Contains(err.Error(), "too many levels") {
		t.Errorf("loop: %v", err)
	}
}
