package plugin_test

import (
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/plugin"
)

// Settings the kubelet would pass wrong are refused with one line, never
// silently replaced by a default: a timeout past the kubelet's 60 s kill
// gets the plugin killed mid-call, a typo in the env hides the setting.
func TestParseFlagsRefusesBadSettings(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"timeout past the kubelet's kill", []string{"--timeout", "61s"}, nil, "60s"},
		{"timeout at the kill", []string{"--timeout=60s"}, nil, "60s"},
		{"zero timeout", []string{"--timeout=0s"}, nil, "timeout"},
		{"negative refresh timeout", []string{"--refresh-timeout=-1s"}, nil, "refresh-timeout"},
		{"env timeout not a duration", nil, map[string]string{plugin.EnvTimeout: "20"}, plugin.EnvTimeout},
		{"env timeout past the kill", nil, map[string]string{plugin.EnvTimeout: "90s"}, plugin.EnvTimeout},
		{"env verbosity not a number", nil, map[string]string{plugin.EnvLogLevel: "debug"}, plugin.EnvLogLevel},
		{"env verbosity negative", nil, map[string]string{plugin.EnvLogLevel: "-1"}, plugin.EnvLogLevel},
		{"negative -v", []string{"-v=-3"}, nil, "-v"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			_, err := plugin.ParseFlags(tc.args, func(k string) string { return tc.env[k] }, &out)
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not name %s", err, tc.want)
			}
			if lines := strings.Count(strings.TrimSpace(out.String()), "\n") + 1; out.Len() == 0 || lines != 1 {
				t.Fatalf("reported in %d lines: %q", lines, out.String())
			}
		})
	}
	// An explicit flag over a bad env value is still an error: the env is
	// part of the provider's config and wrong there.
	if _, err := plugin.ParseFlags([]string{"--timeout=10s"}, func(k string) string { return map[string]string{plugin.EnvTimeout: "x"}[k] }, &strings.Builder{}); err == nil {
		t.Fatal("a bad env value was hidden by a flag")
	}
	if f, err := plugin.ParseFlags([]string{"--timeout=59s"}, func(string) string { return "" }, &strings.Builder{}); err != nil || f.Timeout.Seconds() != 59 {
		t.Fatalf("59s refused: %v", err)
	}
}
