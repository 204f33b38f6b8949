package e2e

// The plugin's wire format against the kubelet's own types and serializer:
// here, not in internal/protocol, so k8s.io stays out of the main module.

import (
	"bytes"
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
	wireScheme = runtime.NewScheme()
	wireCodecs = serializer.NewCodecFactory(wireScheme)
)

func init() { install.Install(wireScheme) }

func kubeletEncode(t *testing.T, obj runtime.Object, gv schema.GroupVersion) []byte {
	t.Helper()
	info, ok := runtime.SerializerInfoForMediaType(wireCodecs.SupportedMediaTypes(), "application/json")
	if !ok {
		t.Fatal("no JSON serializer")
	}
	data, err := runtime.Encode(wireCodecs.EncoderForVersion(info.Serializer, gv), obj)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

const (
	wireHost = "123456789012.dkr.ecr.us-east-1.amazonaws.com:443"
	wirePass = "eyJwYXlsb2FkIjoi+/=&<>"
)

// TestResponseBytesMatchKubeletSerializer proves the response we print is
// byte-for-byte what the kubelet's serializer (and so upstream) prints.
func TestResponseBytesMatchKubeletSerializer(t *testing.T) {
	d := 5*time.Hour + 59*time.Minute + 59*time.Second
	auth := map[string]protocol.AuthConfig{wireHost: {Username: "AWS", Password: wirePass}, "public.ecr.aws": {Username: "AWS", Password: "p2"}}
	tests := []struct {
		version string
		kubelet runtime.Object
		gv      schema.GroupVersion
	}{
		{protocol.V1, &kv1.CredentialProviderResponse{CacheKeyType: kv1.RegistryPluginCacheKeyType, CacheDuration: &metav1.Duration{Duration: d},
			Auth: map[string]kv1.AuthConfig{wireHost: {Username: "AWS", Password: wirePass}, "public.ecr.aws": {Username: "AWS", Password: "p2"}}}, kv1.SchemeGroupVersion},
		{protocol.V1Beta1, &kv1beta1.CredentialProviderResponse{CacheKeyType: kv1beta1.RegistryPluginCacheKeyType, CacheDuration: &metav1.Duration{Duration: d},
			Auth: map[string]kv1beta1.AuthConfig{wireHost: {Username: "AWS", Password: wirePass}, "public.ecr.aws": {Username: "AWS", Password: "p2"}}}, kv1beta1.SchemeGroupVersion},
		{protocol.V1Alpha1, &kv1alpha1.CredentialProviderResponse{CacheKeyType: kv1alpha1.RegistryPluginCacheKeyType, CacheDuration: &metav1.Duration{Duration: d},
			Auth: map[string]kv1alpha1.AuthConfig{wireHost: {Username: "AWS", Password: wirePass}, "public.ecr.aws": {Username: "AWS", Password: "p2"}}}, kv1alpha1.SchemeGroupVersion},
	}
	for _, tt := range tests {
		t.Run(tt.version, func(t *testing.T) {
			resp := protocol.NewResponse(protocol.Request{Kind: protocol.RequestKind, APIVersion: tt.version, Image: wireHost + "/x"})
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
			obj, gvk, err := wireCodecs.UniversalDecoder(tt.gv).Decode(ours.Bytes(), nil, nil)
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
