package protocol_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/kubelet/pkg/apis/credentialprovider/install"
	kv1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1"
	kv1alpha1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1alpha1"
	kv1beta1 "k8s.io/kubelet/pkg/apis/credentialprovider/v1beta1"

	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

// The kubelet's own scheme and codecs, as upstream's plugin uses them.
var (
	scheme = runtime.NewScheme()
	codecs = serializer.NewCodecFactory(scheme)
)

func init() { install.Install(scheme) }

func kubeletEncode(t *testing.T, obj runtime.Object, gv schema.GroupVersion) []byte {
	t.Helper()
	info, ok := runtime.SerializerInfoForMediaType(codecs.SupportedMediaTypes(), "application/json")
	if !ok {
		t.Fatal("no JSON serializer")
	}
	data, err := runtime.Encode(codecs.EncoderForVersion(info.Serializer, gv), obj)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

const (
	host = "123456789012.dkr.ecr.us-east-1.amazonaws.com:443"
	pass = "eyJwYXlsb2FkIjoi+/=&<>"
)

// TestResponseBytesMatchKubeletSerializer proves the response we print is
// byte-for-byte what the kubelet's serializer (and so upstream) prints.
func TestResponseBytesMatchKubeletSerializer(t *testing.T) {
	d := 5*time.Hour + 59*time.Minute + 59*time.Second
	auth := map[string]protocol.AuthConfig{host: {Username: "AWS", Password: pass}, "public.ecr.aws": {Username: "AWS", Password: "p2"}}
	tests := []struct {
		version string
		kubelet runtime.Object
		gv      schema.GroupVersion
	}{
		{protocol.V1, &kv1.CredentialProviderResponse{CacheKeyType: kv1.RegistryPluginCacheKeyType, CacheDuration: &metav1.Duration{Duration: d},
			Auth: map[string]kv1.AuthConfig{host: {Username: "AWS", Password: pass}, "public.ecr.aws": {Username: "AWS", Password: "p2"}}}, kv1.SchemeGroupVersion},
		{protocol.V1Beta1, &kv1beta1.CredentialProviderResponse{CacheKeyType: kv1beta1.RegistryPluginCacheKeyType, CacheDuration: &metav1.Duration{Duration: d},
			Auth: map[string]kv1beta1.AuthConfig{host: {Username: "AWS", Password: pass}, "public.ecr.aws": {Username: "AWS", Password: "p2"}}}, kv1beta1.SchemeGroupVersion},
		{protocol.V1Alpha1, &kv1alpha1.CredentialProviderResponse{CacheKeyType: kv1alpha1.RegistryPluginCacheKeyType, CacheDuration: &metav1.Duration{Duration: d},
			Auth: map[string]kv1alpha1.AuthConfig{host: {Username: "AWS", Password: pass}, "public.ecr.aws": {Username: "AWS", Password: "p2"}}}, kv1alpha1.SchemeGroupVersion},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			resp := protocol.NewResponse(protocol.Request{Kind: protocol.RequestKind, APIVersion: tt.version, Image: host + "/x"})
			resp.CacheDuration = &protocol.Duration{Duration: d}
			resp.Auth = auth
			var ours bytes.Buffer
			if err := resp.Encode(&ours); err != nil {
				t.Fatal(err)
			}
			want := kubeletEncode(t, tt.kubelet, tt.gv)
			if !bytes.Equal(ours.Bytes(), want) {
				t.Fatalf("bytes differ\nours:    %s\nkubelet: %s", ours.Bytes(), want)
			}
			// And the kubelet decodes it strictly into its own type.
			obj, gvk, err := codecs.UniversalDecoder(tt.gv).Decode(ours.Bytes(), nil, nil)
			if err != nil {
				t.Fatalf("kubelet decoder rejects our response: %v", err)
			}
			if gvk.Kind != protocol.ResponseKind || gvk.GroupVersion() != tt.gv {
				t.Fatalf("decoded as %v", gvk)
			}
			_ = obj
		})
	}
}

// TestEmptyAuthResponse is the shape used when ECR Public denies a token.
func TestEmptyAuthResponse(t *testing.T) {
	resp := protocol.NewResponse(protocol.Request{APIVersion: protocol.V1})
	resp.CacheDuration = &protocol.Duration{Duration: 5 * time.Minute}
	var ours bytes.Buffer
	if err := resp.Encode(&ours); err != nil {
		t.Fatal(err)
	}
	want := kubeletEncode(t, &kv1.CredentialProviderResponse{CacheKeyType: kv1.RegistryPluginCacheKeyType, CacheDuration: &metav1.Duration{Duration: 5 * time.Minute}}, kv1.SchemeGroupVersion)
	if !bytes.Equal(ours.Bytes(), want) {
		t.Fatalf("ours %s\nkubelet %s", ours.Bytes(), want)
	}
}

// TestDecodeKubeletRequests feeds requests the kubelet's serializer wrote.
func TestDecodeKubeletRequests(t *testing.T) {
	img := "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app"
	tests := []struct {
		name    string
		obj     runtime.Object
		gv      schema.GroupVersion
		wantTok string
	}{
		{"v1alpha1", &kv1alpha1.CredentialProviderRequest{Image: img}, kv1alpha1.SchemeGroupVersion, ""},
		{"v1beta1", &kv1beta1.CredentialProviderRequest{Image: img}, kv1beta1.SchemeGroupVersion, ""},
		{"v1", &kv1.CredentialProviderRequest{Image: img}, kv1.SchemeGroupVersion, ""},
		{"v1 with service account", &kv1.CredentialProviderRequest{Image: img, ServiceAccountToken: "jwt.jwt.jwt",
			ServiceAccountAnnotations: map[string]string{"eks.amazonaws.com/ecr-role-arn": "arn:aws:iam::123456789012:role/r"}}, kv1.SchemeGroupVersion, "jwt.jwt.jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := protocol.DecodeRequest(kubeletEncode(t, tt.obj, tt.gv))
			if err != nil {
				t.Fatal(err)
			}
			if req.APIVersion != tt.gv.String() || req.Image != img || req.ServiceAccountToken != tt.wantTok {
				t.Fatalf("decoded %+v", req)
			}
			if tt.wantTok != "" && req.ServiceAccountAnnotations["eks.amazonaws.com/ecr-role-arn"] == "" {
				t.Fatal("annotations lost")
			}
		})
	}
}

func TestDecodeRejects(t *testing.T) {
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", "", "no request on stdin"},
		{"whitespace", " \n", "no request on stdin"},
		{"not json", "{", "not valid JSON"},
		{"array", "[]", "not a JSON object"},
		{"wrong kind", `{"kind":"Pod","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a/b"}`, `kind is "Pod"`},
		{"unknown version", `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v2","image":"a/b"}`, "not supported"},
		{"other group", `{"kind":"CredentialProviderRequest","apiVersion":"v1","image":"a/b"}`, "not supported"},
		{"empty image", `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":""}`, "empty image"},
		{"image wrong type", `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":5}`, `"image" has the wrong type`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := protocol.DecodeRequest([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

// ReadRequest bounds what it reads; ReadRequestBytes hands back what it read
// either way, so a caller can pass it on intact.
func TestReadRequestSizeLimit(t *testing.T) {
	const req = `{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"a/b"}`
	for _, tt := range []struct {
		name    string
		in      string
		wantErr string
	}{
		{"at the limit", req + strings.Repeat(" ", protocol.MaxRequestBytes-len(req)), ""},
		{"one byte over", req + strings.Repeat(" ", protocol.MaxRequestBytes-len(req)+1), "larger than"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, err := protocol.ReadRequestBytes(strings.NewReader(tt.in))
			if tt.wantErr == "" {
				if err != nil || string(data) != tt.in {
					t.Fatalf("read %d bytes, err %v; want all %d", len(data), err, len(tt.in))
				}
			} else if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.HasPrefix(tt.in, string(data)) || len(data) != protocol.MaxRequestBytes+1 {
				t.Fatalf("read %d bytes, err %v; want the first %d bytes and %q", len(data), err, protocol.MaxRequestBytes+1, tt.wantErr)
			}
			_, err = protocol.ReadRequest(strings.NewReader(tt.in))
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("ReadRequest err %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestErrorsNeverEchoTheToken guards against a decode error quoting input.
func TestErrorsNeverEchoTheToken(t *testing.T) {
	secret := "SECRET-SA-TOKEN"
	for _, in := range []string{
		`{"kind":"CredentialProviderRequest","apiVersion":"x","serviceAccountToken":"` + secret + `","image":"a/b"}`,
		`{"kind":"Nope","serviceAccountToken":"` + secret + `"}`,
		`{"kind":"CredentialProviderRequest","serviceAccountToken":"` + secret + `",`,
		`{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","serviceAccountToken":"` + secret + `","image":""}`,
	} {
		_, err := protocol.DecodeRequest([]byte(in))
		if err == nil || strings.Contains(err.Error(), secret) {
			t.Fatalf("err = %v", err)
		}
	}
	r := protocol.Request{ServiceAccountToken: secret}
	if strings.Contains(r.String(), secret) || strings.Contains(protocol.AuthConfig{Password: secret}.String(), secret) {
		t.Fatal("String() leaks a secret")
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"1.dkr.ecr.us-east-1.amazonaws.com/x"}`))
	f.Add([]byte(`{"kind":"CredentialProviderRequest","apiVersion":"credentialprovider.kubelet.k8s.io/v1alpha1","image":"x","serviceAccountToken":"t"}`))
	f.Add([]byte(`{`))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, err := protocol.DecodeRequest(data)
		if err != nil {
			return
		}
		if req.Kind != protocol.RequestKind || !protocol.Supported(req.APIVersion) || strings.TrimSpace(req.Image) == "" {
			t.Fatalf("accepted an invalid request: %+v", req)
		}
		if req.APIVersion != protocol.V1 && req.ServiceAccountToken != "" {
			t.Fatal("service account token kept for a pre-v1 request")
		}
	})
}

// An error repeats at most a short prefix of any request field.
func TestErrorsClipEchoedFields(t *testing.T) {
	huge := strings.Repeat("k", 1<<20)
	for name, in := range map[string]string{
		"kind":       `{"kind":"` + huge + `","apiVersion":"credentialprovider.kubelet.k8s.io/v1","image":"x/y"}`,
		"apiVersion": `{"kind":"CredentialProviderRequest","apiVersion":"` + huge + `","image":"x/y"}`,
	} {
		_, err := protocol.DecodeRequest([]byte(in))
		if err == nil {
			t.Fatalf("%s: accepted", name)
		}
		if len(err.Error()) > 1024 {
			t.Errorf("%s: error is %d bytes long", name, len(err.Error()))
		}
	}
}
