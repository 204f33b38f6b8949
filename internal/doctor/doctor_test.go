package doctor

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
)

func TestHealthyChainPasses(t *testing.T) {
	tests := []struct {
		image    string
		manifest string // substring of the manifest check's summary
	}{
		{regHost + "/app:v1", "tag v1: OCI manifest sha256:3333"},
		// An index: the doctor follows it to this platform's manifest.
		{regHost + "/multi:v1", "tag v1: OCI index sha256:3333333333333333333333333333333333333333333333333333333333333333, 2 platforms, 1 layer(s)"},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			w := newWorld(t)
			rep, err := Run(context.Background(), w.options(t, tt.image))
			if err != nil {
				t.Fatal(err)
			}
			text, _ := render(t, rep, w.password())
			t.Log("\n" + text)
			if !rep.OK {
				t.Fatalf("a healthy chain must pass:\n%s", text)
			}
			for _, c := range rep.Checks {
				want := StatusOK
				switch c.ID {
				case CheckKubelet, CheckProviderConfig, CheckProviderMatch, CheckProviderBinary, CheckPlugin:
					want = StatusSkip // no kubelet in this test
				}
				if c.Status != want {
					t.Errorf("%s: status %s, want %s: %s", c.ID, c.Status, want, c.Summary)
				}
			}
			if m := mustCheck(t, rep, CheckManifest); !strings.Contains(m.Summary, tt.manifest) {
				t.Errorf("manifest summary %q lacks %q", m.Summary, tt.manifest)
			}
			if got := mustCheck(t, rep, CheckIdentity).Facts["roleArn"]; got != "arn:aws:iam::"+acct+":role/ecr-node-role" {
				t.Errorf("identity roleArn = %q", got)
			}
			if got := mustCheck(t, rep, CheckCredentials).Facts["source"]; got != "EC2RoleProvider" {
				t.Errorf("credential source = %q, want EC2RoleProvider (the emulator's IMDS)", got)
			}
			if got := mustCheck(t, rep, CheckLayerDownload).Facts["host"]; got != s3Host {
				t.Errorf("layer download host = %q, want %s", got, s3Host)
			}
			if n := w.emu.Stats().Op(awsemu.TargetECR, "GetAuthorizationToken").Requests; n != 1 {
				t.Errorf("GetAuthorizationToken called %d times, want 1", n)
			}
			if !strings.Contains(text, "OK: a pull of this image would work") {
				t.Errorf("text verdict missing:\n%s", text)
			}
		})
	}
}

func TestECRPublic(t *testing.T) {
	tests := []struct {
		name      string
		deny      bool
		tokenWant Status
		loginWant string
	}{
		{name: "with a token", tokenWant: StatusOK, loginWant: "issued a pull token with the token (user AWS)"},
		// Without a token, ECR Public still serves anonymous pulls, as the
		// kubelet falls back to: the failure is advisory.
		{name: "token denied", deny: true, tokenWant: StatusFail, loginWant: "issued a pull token anonymously"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			if tt.deny {
				w.emu.Deny("ecr-public:GetAuthorizationToken", "")
			}
			rep, err := Run(context.Background(), w.options(t, pubHost+"/org/app:v1"))
			if err != nil {
				t.Fatal(err)
			}
			text, _ := render(t, rep, w.password(), "authenticated-"+w.password())
			t.Log("\n" + text)
			if !rep.OK {
				t.Errorf("an ECR Public pull works either way:\n%s", text)
			}
			tok := mustCheck(t, rep, CheckAuthToken)
			if tok.Status != tt.tokenWant {
				t.Errorf("auth-token: %s, want %s", tok.Status, tt.tokenWant)
			}
			if tt.deny {
				for _, s := range []string{"ecr-public:GetAuthorizationToken", PolicyPublicReadOnly, "sts:GetServiceBearerToken"} {
					if !strings.Contains(tok.Summary+tok.Remedy, s) {
						t.Errorf("auth-token failure lacks %q: %s / %s", s, tok.Summary, tok.Remedy)
					}
				}
				if !tok.Advisory || !strings.Contains(text, "! GetAuthorizationToken") {
					t.Errorf("a denied ECR Public token must be an advisory failure:\n%s", text)
				}
			}
			if c := mustCheck(t, rep, CheckRegistry); c.Status != StatusOK || !strings.Contains(c.Summary, tt.loginWant) || c.Facts["challenge"] != "bearer" {
				t.Errorf("registry login: %s %q %v", c.Status, c.Summary, c.Facts)
			}
			if c := mustCheck(t, rep, CheckNetLayers); c.Status != StatusSkip {
				t.Errorf("ECR Public has no S3 layer bucket to probe: %s", c.Status)
			}
			if c := mustCheck(t, rep, CheckLayerDownload); c.Status != StatusOK || c.Facts["host"] != cdnHost {
				t.Errorf("layer download: %s %v", c.Status, c.Facts)
			}
		})
	}
}

func TestFailures(t *testing.T) {
	tests := []struct {
		name  string
		image string
		setup func(t *testing.T, w *world, o *Options)
		check string
		// want are substrings of the failed check's summary+remedy+policy.
		want []string
		// wantFacts must be among the check's facts.
		wantFacts map[string]string
		// skipped checks must say why.
		skipped []string
		// alsoFailed are further checks the same cause fails.
		alsoFailed []string
		// not must not appear anywhere in the check.
		not []string
	}{
		{
			name:      "GetAuthorizationToken denied",
			image:     regHost + "/app:v1",
			setup:     func(t *testing.T, w *world, o *Options) { w.emu.Deny("ecr:GetAuthorizationToken", "") },
			check:     CheckAuthToken,
			want:      []string{"AccessDenied", "ecr:GetAuthorizationToken", "AmazonEC2ContainerRegistryReadOnly", "arn:aws:iam::" + acct + ":role/ecr-node-role"},
			wantFacts: map[string]string{"missingAction": "ecr:GetAuthorizationToken", "code": "AccessDeniedException"},
			skipped:   []string{CheckRegistry, CheckManifest, CheckLayerDownload},
		},
		{
			name:      "manifest denied in the same account",
			image:     regHost + "/denied:v1",
			check:     CheckManifest,
			want:      []string{"403", "DENIED", "same account", "ecr:BatchGetImage", "get-repository-policy"},
			wantFacts: map[string]string{"missingAction": "ecr:BatchGetImage", "principal": "arn:aws:iam::" + acct + ":role/ecr-node-role"},
			not:       []string{"cross-account", `"Principal"`},
		},
		{
			name:      "manifest denied across accounts",
			image:     otherHost + "/denied:v1",
			check:     CheckManifest,
			want:      []string{"cross-account", "account " + otherAcct, "set-repository-policy", `"AWS": "arn:aws:iam::` + acct + `:role/ecr-node-role"`, "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"},
			wantFacts: map[string]string{"crossAccount": "true"},
			not:       []string{`"AWS": "arn:aws:sts::`, "instance-profile"},
		},
		{
			name:      "repository does not exist",
			image:     regHost + "/nosuchrepo:v1",
			check:     CheckManifest,
			want:      []string{"repository nosuchrepo does not exist", "describe-repositories"},
			wantFacts: map[string]string{"status": "404", "code": "NAME_UNKNOWN"},
		},
		{
			name:      "tag does not exist",
			image:     regHost + "/app:v2",
			check:     CheckManifest,
			want:      []string{"tag v2 not found", "list-images"},
			wantFacts: map[string]string{"code": "MANIFEST_UNKNOWN"},
		},
		{
			name:      "registry name does not resolve",
			image:     regHost + "/app:v1",
			setup:     func(t *testing.T, w *world, o *Options) { delete(w.resolver.hosts, regHost) },
			check:     CheckNetRegistry,
			want:      []string{"does not resolve", "com.amazonaws." + region + ".ecr.dkr", "private DNS"},
			wantFacts: map[string]string{"stage": "dns", "failure": failNXDomain},
			skipped:   []string{CheckRegistry, CheckManifest, CheckLayerDownload},
		},
		{
			name:  "registry connect never completes",
			image: regHost + "/app:v1",
			setup: func(t *testing.T, w *world, o *Options) {
				w.dialer.routes["127.0.0.2:443"] = blackhole(t)
				o.CheckTimeout = 300 * time.Millisecond
			},
			check:     CheckNetRegistry,
			want:      []string{"timed out", "route table", "security group", "network ACL"},
			wantFacts: map[string]string{"stage": "tcp", "failure": failTimeout},
			skipped:   []string{CheckRegistry, CheckManifest},
		},
		{
			name:  "registry connect refused",
			image: regHost + "/app:v1",
			setup: func(t *testing.T, w *world, o *Options) {
				l, _ := net.Listen("tcp", "127.0.0.1:0")
				w.dialer.routes["127.0.0.2:443"] = l.Addr().String()
				l.Close()
			},
			check:     CheckNetRegistry,
			want:      []string{"refused", "host firewall", "drop packets rather than refuse"},
			wantFacts: map[string]string{"failure": failRefused},
		},
		{
			name:  "registry port speaks plain HTTP",
			image: regHost + "/app:v1",
			setup: func(t *testing.T, w *world, o *Options) {
				plain := httptest.NewUnstartedServer(http.NotFoundHandler())
				quiet(plain)
				plain.Start()
				t.Cleanup(plain.Close)
				w.dialer.routes["127.0.0.2:443"] = plain.Listener.Addr().String()
			},
			check:     CheckNetRegistry,
			want:      []string{"does not speak TLS", "plain-HTTP proxy"},
			wantFacts: map[string]string{"stage": "tls", "failure": failTLSNotTLS},
		},
		{
			name:  "registry certificate from an untrusted issuer",
			image: regHost + "/app:v1",
			setup: func(t *testing.T, w *world, o *Options) {
				// What a TLS-inspecting proxy does: the right name, its own CA.
				proxy := httptest.NewUnstartedServer(http.NotFoundHandler())
				proxy.TLS = &tls.Config{Certificates: []tls.Certificate{newCA(t).leaf(t, regHost)}}
				quiet(proxy)
				proxy.StartTLS()
				t.Cleanup(proxy.Close)
				w.dialer.routes["127.0.0.2:443"] = proxy.Listener.Addr().String()
			},
			check:     CheckNetRegistry,
			want:      []string{"unknown authority (doctor test CA)", "TLS-inspecting proxy", "trust store"},
			wantFacts: map[string]string{"stage": "tls", "failure": failTLSUntrusted},
		},
		{
			name:  "registry certificate for another name",
			image: regHost + "/app:v1",
			setup: func(t *testing.T, w *world, o *Options) {
				other := httptest.NewUnstartedServer(http.NotFoundHandler())
				quiet(other)
				other.StartTLS()
				t.Cleanup(other.Close)
				w.dialer.routes["127.0.0.2:443"] = other.Listener.Addr().String()
			},
			check:     CheckNetRegistry,
			want:      []string{"the certificate is for example.com", "/etc/hosts"},
			wantFacts: map[string]string{"stage": "tls", "failure": failTLSName},
		},
		{
			name:  "no credentials at all",
			image: regHost + "/app:v1",
			setup: func(t *testing.T, w *world, o *Options) {
				t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
			},
			check:   CheckCredentials,
			want:    []string{"no credentials", "instance profile", "IMDS"},
			skipped: []string{CheckIdentity, CheckAuthToken, CheckRegistry, CheckManifest},
		},
		{
			name:  "VPC endpoints without the S3 gateway endpoint",
			image: regHost + "/app:v1",
			setup: func(t *testing.T, w *world, o *Options) {
				w.resolver.hosts[regHost] = []string{"10.0.12.34"}
				w.dialer.routes["10.0.12.34:443"] = w.reg.addr()
				w.dialer.routes["127.0.0.3:443"] = blackhole(t)
				o.CheckTimeout = 300 * time.Millisecond
			},
			check:      CheckNetLayers,
			want:       []string{s3Host, "S3 gateway endpoint (com.amazonaws." + region + ".s3)", "route table"},
			wantFacts:  map[string]string{"stage": "tcp", "failure": failTimeout},
			alsoFailed: []string{CheckLayerDownload},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(t)
			o := w.options(t, tt.image)
			if tt.setup != nil {
				tt.setup(t, w, &o)
			}
			rep, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			text, _ := render(t, rep, w.password())
			t.Log("\n" + text)
			if rep.OK {
				t.Fatalf("report says a pull would work:\n%s", text)
			}
			c := mustCheck(t, rep, tt.check)
			if c.Status != StatusFail {
				t.Fatalf("%s: status %s, want fail:\n%s", tt.check, c.Status, text)
			}
			all := c.Summary + "\n" + c.Remedy + "\n" + c.Policy + "\n" + strings.Join(c.Notes, "\n")
			for _, s := range tt.want {
				if !strings.Contains(all, s) {
					t.Errorf("%s lacks %q:\n%s", tt.check, s, all)
				}
			}
			for _, s := range tt.not {
				if strings.Contains(all, s) {
					t.Errorf("%s must not say %q:\n%s", tt.check, s, all)
				}
			}
			for k, v := range tt.wantFacts {
				if c.Facts[k] != v {
					t.Errorf("%s fact %s = %q, want %q", tt.check, k, c.Facts[k], v)
				}
			}
			for _, id := range tt.alsoFailed {
				if s := mustCheck(t, rep, id); s.Status != StatusFail || s.Remedy != c.Remedy {
					t.Errorf("%s: %s with fix %q, want the same failure as %s", id, s.Status, s.Remedy, tt.check)
				}
			}
			for _, id := range tt.skipped {
				if s := mustCheck(t, rep, id); s.Status != StatusSkip || s.Summary == "" {
					t.Errorf("%s: status %s (%q), want skipped with a reason", id, s.Status, s.Summary)
				}
			}
			if !strings.Contains(text, "✗ "+c.Title) || !strings.Contains(text, "fix: ") {
				t.Errorf("text output lacks the failure line and its fix:\n%s", text)
			}
			if !strings.Contains(rep.Verdict, "a pull would fail") {
				t.Errorf("verdict = %q", rep.Verdict)
			}
		})
	}
}

// A connect that never completes must not hold the doctor past the
// caller's deadline, whatever the per-check timeout.
func TestRunReturnsAtTheDeadline(t *testing.T) {
	w := newWorld(t)
	o := w.options(t, regHost+"/app:v1")
	w.dialer.routes["127.0.0.2:443"] = blackhole(t)
	o.CheckTimeout = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := render(t, rep, w.password())
	c := mustCheck(t, rep, CheckNetRegistry)
	if c.Status != StatusFail || c.Facts["failure"] != failTimeout {
		t.Fatalf("registry network check: %s %v, want a timeout failure:\n%s", c.Status, c.Facts, text)
	}
	for _, id := range []string{CheckAuthToken, CheckRegistry, CheckManifest, CheckPlugin} {
		if s := mustCheck(t, rep, id); s.Status != StatusSkip {
			t.Errorf("%s ran after the deadline: %s %q", id, s.Status, s.Summary)
		}
	}
	if rep.OK {
		t.Error("report OK after a timeout")
	}
}

func TestJSONRoundTrips(t *testing.T) {
	w := newWorld(t)
	rep, err := Run(context.Background(), w.options(t, otherHost+"/denied:v1"))
	if err != nil {
		t.Fatal(err)
	}
	_, js := render(t, rep, w.password())
	var back Report
	dec := json.NewDecoder(strings.NewReader(js))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*rep, back) {
		t.Errorf("JSON round trip changed the report:\nbefore %+v\nafter  %+v", *rep, back)
	}
	var generic map[string]any
	json.Unmarshal([]byte(js), &generic)
	for _, k := range []string{"image", "ok", "verdict", "checks"} {
		if _, ok := generic[k]; !ok {
			t.Errorf("JSON has no %q", k)
		}
	}
	m, _ := back.Find(CheckManifest)
	if m.Policy == "" || m.Status != StatusFail {
		t.Errorf("manifest check lost its policy or status in JSON: %+v", m)
	}
	var pol struct {
		Statement []struct{ Principal struct{ AWS string } }
	}
	if err := json.Unmarshal([]byte(m.Policy), &pol); err != nil || len(pol.Statement) != 1 || pol.Statement[0].Principal.AWS != "arn:aws:iam::"+acct+":role/ecr-node-role" {
		t.Errorf("policy is not a document naming the role (%v): %s", err, m.Policy)
	}
}

func TestNotECR(t *testing.T) {
	w := newWorld(t)
	rep, err := Run(context.Background(), w.options(t, "ghcr.io/org/app:v1"))
	if err != nil {
		t.Fatal(err)
	}
	text, _ := render(t, rep)
	if rep.OK || mustCheck(t, rep, CheckImage).Status != StatusFail {
		t.Fatalf("a non-ECR image must fail the image check:\n%s", text)
	}
	if st := w.emu.Stats(); st.Requests != 0 {
		t.Errorf("the doctor called AWS %d times for a non-ECR image", st.Requests)
	}
	if len(w.resolver.asked) != 0 {
		t.Errorf("the doctor looked up %v for a non-ECR image", w.resolver.asked)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	if _, err := Run(context.Background(), Options{}); err != ErrNoImage {
		t.Errorf("empty image: err = %v", err)
	}
	if _, err := Run(context.Background(), Options{Image: regHost + "/app", RegistryEndpoint: "::nope"}); err == nil {
		t.Error("a bad --registry-endpoint must be an error")
	}
}

// The registry endpoint override reaches a mirror by URL, as a private
// mirror or a test registry would be reached.
func TestRegistryEndpointOverride(t *testing.T) {
	w := newWorld(t)
	delete(w.resolver.hosts, regHost) // the real name must not be needed
	o := w.options(t, regHost+"/app:v1")
	o.RegistryEndpoint = "https://" + w.reg.addr()
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	text, _ := render(t, rep, w.password())
	if !rep.OK {
		t.Fatalf("pull through the endpoint override should work:\n%s", text)
	}
	if got := mustCheck(t, rep, CheckRegistry).Facts["endpoint"]; got != "https://"+w.reg.addr() {
		t.Errorf("registry endpoint = %q", got)
	}
	for _, h := range w.resolver.asked {
		if h == regHost {
			t.Errorf("the registry host was looked up despite the override")
		}
	}
}

func TestTextOutputShape(t *testing.T) {
	rep := &Report{Image: "img", Verdict: "v", Checks: []Check{
		{ID: "a", Title: "Alpha", Status: StatusOK, Summary: "fine"},
		{ID: "b", Title: "Beta", Status: StatusFail, Summary: "broken", Remedy: "do this", Policy: "{\n}"},
		{ID: "c", Title: "Gamma", Status: StatusSkip, Summary: "no input"},
		{ID: "d", Title: "Delta", Status: StatusFail, Advisory: true, Summary: "survivable"},
	}}
	var b bytes.Buffer
	rep.WriteText(&b)
	want := "doctor: img\n✓ Alpha  fine\n✗ Beta   broken\n    fix: do this\n    policy:\n      {\n      }\n- Gamma  skipped: no input\n! Delta  survivable\n\nFAIL: v\n" +
		"(✓ passed   ✗ failed: a pull fails because of it   ! failed, but a pull still works without it   - skipped: the reason follows)\n"
	if b.String() != want {
		t.Errorf("text output:\n%s\nwant:\n%s", b.String(), want)
	}
}
