package cli

import (
	"bytes"
	"flag"
	"strings"
	"testing"
)

// TestHelpOfEveryCommand asks each command for help the three ways people
// do, and wants the same text each time: usage, a description, the flags
// and an example, on stdout, with exit 0.
func TestHelpOfEveryCommand(t *testing.T) {
	tests := []struct {
		command string   // as typed, subcommands too
		flags   []string // a sample of the flags its help must list
	}{
		{"get-credentials", []string{"-cache-dir", "-timeout", "-role-annotation", "-v "}},
		{"install", []string{"-dry-run", "-distro", "-public", "-root"}},
		{"uninstall", []string{"-dry-run", "-force", "-root"}},
		{"config", nil},
		{"config validate", []string{"-kubelet-version", "-bin-dir", "-json"}},
		{"config print", []string{"-public", "-api-version", "-name"}},
		{"match", []string{"-config", "-all", "-kubelet-version"}},
		{"doctor", []string{"-config", "-run-plugin", "-json", "-timeout"}},
		{"rbac", []string{"-audience"}},
		{"version", nil},
		{"help", nil},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[strings.Fields(tt.command)[0]] = true
		t.Run(tt.command, func(t *testing.T) {
			words := strings.Fields(tt.command)
			forms := [][]string{
				append(append([]string(nil), words...), "--help"),
				append(append([]string(nil), words...), "-h"),
				append([]string{"help"}, words...),
			}
			var first string
			for _, args := range forms {
				code, out, errs := mainOut(args...)
				if code != 0 || errs != "" {
					t.Fatalf("%q: exit %d, stderr %q", args, code, errs)
				}
				if first == "" {
					first = out
				} else if out != first && tt.command != "help" {
					t.Errorf("%q prints other help than %q:\n%s\n---\n%s", args, forms[0], out, first)
				}
			}
			if tt.command == "help" {
				return // 'help help' and 'help --help' are the overview, checked below
			}
			d, ok := docs[tt.command]
			if !ok {
				t.Fatalf("no help text for %q", tt.command)
			}
			want := []string{"Usage: ecr-credential-provider " + d.usage, strings.SplitN(d.about, "\n", 2)[0], "Example:\n  ecr-credential-provider"}
			if len(tt.flags) > 0 {
				want = append(want, "Flags:")
			}
			for _, f := range tt.flags {
				want = append(want, "  "+f)
			}
			for _, w := range want {
				if !strings.Contains(first, w) {
					t.Errorf("help lacks %q:\n%s", w, first)
				}
			}
		})
	}
	for name := range commands {
		if !covered[name] {
			t.Errorf("command %q has no help case here", name)
		}
	}
}

// TestOverviewListsCommandsAndPluginFlags wants the top-level help to name
// every command and every flag the plugin parses.
func TestOverviewListsCommandsAndPluginFlags(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}, {"help", "--help"}} {
		code, out, errs := mainOut(args...)
		if code != 0 || errs != "" {
			t.Fatalf("%q: exit %d, stderr %q", args, code, errs)
		}
		for name, c := range commands {
			if !strings.Contains(out, name) || !strings.Contains(out, c.summary) {
				t.Errorf("%q: overview lacks %s (%s)", args, name, c.summary)
			}
		}
		pluginFlagSet(&Env{Getenv: func(string) string { return "" }}).VisitAll(func(f *flag.Flag) {
			if !strings.Contains(out, "  -"+f.Name+" ") && !strings.Contains(out, "  -"+f.Name+"\n") {
				t.Errorf("%q: overview lacks plugin flag -%s:\n%s", args, f.Name, out)
			}
		})
	}
}

func TestUsageErrorsPointToHelp(t *testing.T) {
	tests := []struct {
		args   []string
		stderr string
	}{
		{[]string{"help", "instal"}, `help: unknown command "instal"`},
		{[]string{"install", "--nope"}, "Run 'ecr-credential-provider install --help' for usage."},
		{[]string{"config", "validate", "--nope"}, "Run 'ecr-credential-provider config validate --help' for usage."},
		{[]string{"match", "img"}, "Run 'ecr-credential-provider match --help' for usage."},
		{[]string{"version", "x"}, `version: unexpected argument "x"`},
		{[]string{"get-credentials", "--nope"}, "flag provided but not defined: -nope"},
	}
	for _, tt := range tests {
		code, out, errs := mainOut(tt.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tt.stderr) {
			t.Errorf("%q: exit %d (want 2), stdout %q, stderr %q, want it to say %q", tt.args, code, out, errs, tt.stderr)
		}
	}
}

func mainOut(args ...string) (int, string, string) {
	var out, errs bytes.Buffer
	code := Main(args, &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errs, Getenv: func(string) string { return "" }})
	return code, out.String(), errs.String()
}
