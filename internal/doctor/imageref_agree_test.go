package doctor

import (
	"strings"
	"testing"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// The plugin (ecrhost), the config check and `match` (providerconfig) and
// the doctor read an image's registry host and name with one parser, so
// they agree on every reference, including those they used to split
// differently (marked "was:").
func TestImageReferenceCallersAgree(t *testing.T) {
	const ecr = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	hex := strings.Repeat("0123456789abcdef", 4)
	tests := []struct {
		image string
		host  string // "" when the kubelet refuses the reference
		name  string
	}{
		{ecr + "/app:v1", ecr, ecr + "/app"},
		{ecr + ":443/team/app@sha256:" + hex, ecr + ":443", ecr + ":443/team/app"},
		{"public.ecr.aws/nginx/nginx:1", "public.ecr.aws", "public.ecr.aws/nginx/nginx"},
		{"nginx", "docker.io", "docker.io/library/nginx"},
		{"localhost:5000/app", "localhost:5000", "localhost:5000/app"},
		{"localhost:5000", "docker.io", "docker.io/library/localhost"},
		{"[::1]:5000/app", "[::1]:5000", "[::1]:5000/app"},
		// was: the plugin said docker.io, the kubelet's name starts with UPPER.
		{"UPPER/x", "UPPER", "UPPER/x"},
		// was: the plugin said index.docker.io, the kubelet docker.io.
		{"index.docker.io/team/app", "docker.io", "docker.io/team/app"},
		// was: the plugin took the first component, the grammar reads it all as a path.
		{"a_b.c/x", "a_b.c", "a_b.c/x"},
		// was: the plugin (and the doctor's own split) accepted these; the kubelet refuses them.
		{"https://" + ecr + "/app", "", ""},
		{" " + ecr + "/app", "", ""},
		{ecr + "/App", "", ""},
		{ecr + "/app@sha256:abc", "", ""},
		{ecr + "./app", "", ""},
		{ecr + "/", "", ""},
		{"user@" + ecr + "/app", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			// providerconfig: the name the kubelet matches matchImages against.
			name, nerr := providerconfig.ImageName(tt.image)
			// ecrhost: the host the plugin keys its answer by, for the image
			// as written and for the name the kubelet actually sends it.
			reg, herr := ecrhost.Parse(tt.image)
			// doctor: what its image check reports.
			r := &run{o: Options{Image: tt.image}}
			c := r.checkImage()
			if tt.host == "" {
				if nerr == nil || herr == nil || c.Status != StatusFail || r.reg.Host != "" {
					t.Fatalf("want every caller to refuse it: name %q (%v), plugin host %q (%v), doctor %s %q host %q",
						name, nerr, reg.Host, herr, c.Status, c.Summary, r.reg.Host)
				}
				return
			}
			if nerr != nil || name != tt.name {
				t.Errorf("providerconfig.ImageName = %q, %v; want %q", name, nerr, tt.name)
			}
			if herr != nil || reg.Host != tt.host {
				t.Errorf("ecrhost.Parse(image).Host = %q, %v; want %q", reg.Host, herr, tt.host)
			}
			if sent, err := ecrhost.Parse(name); err != nil || sent.Host != tt.host {
				t.Errorf("ecrhost.Parse(kubelet's name %q).Host = %q, %v; want %q", name, sent.Host, err, tt.host)
			}
			if r.reg.Host != tt.host {
				t.Errorf("doctor's host = %q (%s: %s); want %q", r.reg.Host, c.Status, c.Summary, tt.host)
			}
			if r.reg.ECR && (c.Status != StatusOK || r.ref.Name() != tt.name || c.Facts["host"] != tt.host) {
				t.Errorf("doctor: %s %q, name %q, host fact %q; want ok, %q, %q", c.Status, c.Summary, r.ref.Name(), c.Facts["host"], tt.name, tt.host)
			}
			// The kubelet finds the plugin's answer by matching its key
			// (the host) against the name as a matchImages pattern would.
			if ok, err := providerconfig.URLsMatchStr(reg.Host, name); !ok || err != nil {
				t.Errorf("the kubelet would not find credentials keyed %q for %q: %v", reg.Host, name, err)
			}
		})
	}
}
