package nodesetup

import (
	"reflect"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/kubeletwiring"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

// FuzzRegistriesYAMLText: when adding a mirror to a registries.yaml by
// text gives what was wanted, taking it out again gives back exactly the
// mapping there was.
func FuzzRegistriesYAMLText(f *testing.F) {
	for _, s := range []string{"", "mirrors:\n  quay.io:\n    endpoint: [\"https://q\"]\n", "# c\nmirrors:\n    quay.io:\n        endpoint:\n        - https://q\n\nconfigs: {}\n",
		"mirrors: {}\n", "configs:\n  a:\n    auth: {username: x}\n", "mirrors:\n  # only a comment\n"} {
		f.Add(s)
	}
	rule, err := registrymap.ParseRule("docker.io=123456789012.dkr.ecr.us-east-1.amazonaws.com/docker-hub")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		before, err := kubeletwiring.ParseRancherConfig("r", []byte(text))
		if err != nil {
			return
		}
		if m, isMap := before["mirrors"].(map[string]any); before["mirrors"] != nil && !isMap || m["docker.io"] != nil {
			return // refused by planRegistriesYAML, or not ours to add
		}
		added, ok := addMirrorText(text, rule)
		if !ok {
			return
		}
		got, err := kubeletwiring.ParseRancherConfig("r", []byte(added))
		want := asMap(jsonRound(before))
		mirrors, _ := want["mirrors"].(map[string]any)
		if mirrors == nil {
			mirrors = map[string]any{}
		}
		mirrors["docker.io"] = jsonRound(registryMirror(rule))
		want["mirrors"] = mirrors
		if err != nil || !reflect.DeepEqual(jsonRound(got), jsonRound(want)) {
			return // planRegistriesYAML checks this and rewrites instead
		}
		removed, ok := removeMirrorText(added, "docker.io")
		if !ok {
			t.Fatalf("cannot take out the mirror just added to %q:\n%s", text, added)
		}
		back, err := kubeletwiring.ParseRancherConfig("r", []byte(removed))
		if err != nil {
			t.Fatalf("%v after taking the mirror out of:\n%s\ngot:\n%s", err, added, removed)
		}
		wantBack := asMap(jsonRound(before))
		// An empty mirrors key (null or {}) goes with our last entry: the
		// same to k3s as none.
		if m, present := wantBack["mirrors"]; present && len(asMap(m)) == 0 {
			delete(wantBack, "mirrors")
		}
		if gb := asMap(jsonRound(back)); !reflect.DeepEqual(gb, wantBack) {
			t.Fatalf("round trip of %q:\n%s\nwant %v, got %v", text, removed, wantBack, gb)
		}
	})
}

func asMap(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{}
}
