package dockerconfig

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := map[string]Credential{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com":     {"AWS", "p1"},
		"210987654321.dkr.ecr.cn-north-1.amazonaws.com.cn": {"AWS", "p:2"},
		"public.ecr.aws": {"AWS", "p3"},
	}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	b2, _ := Marshal(in)
	if !bytes.Equal(b, b2) {
		t.Fatal("Marshal is not deterministic")
	}
	if want := base64.StdEncoding.EncodeToString([]byte("AWS:p:2")); !bytes.Contains(b, []byte(`"auth":"`+want+`"`)) {
		t.Fatalf("payload lacks the kubelet's auth field: %s", b)
	}
	out, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Fatalf("round trip: got %v want %v", out, in)
	}
}

func TestMarshalRejectsEmpty(t *testing.T) {
	for name, c := range map[string]map[string]Credential{
		"host":     {"": {"AWS", "p"}},
		"user":     {"h": {"", "p"}},
		"password": {"h": {"AWS", ""}},
	} {
		if _, err := Marshal(c); err == nil {
			t.Errorf("%s: empty value accepted", name)
		}
	}
}

func TestUnmarshalRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":   `{`,
		"bad base64": `{"auths":{"h":{"auth":"!!"}}}`,
		"no colon":   `{"auths":{"h":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("AWS")) + `"}}}`,
		"disagrees":  `{"auths":{"h":{"password":"x","auth":"` + base64.StdEncoding.EncodeToString([]byte("AWS:y")) + `"}}}`,
	} {
		if _, err := Unmarshal([]byte(in)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"auths":{"h":{"auth":"QVdTOnA="}}}`))
	f.Add([]byte(`{"auths":{"h":{"username":"AWS","password":"p"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		creds, err := Unmarshal(data)
		if err != nil {
			return
		}
		clean := map[string]Credential{}
		for h, c := range creds {
			if h != "" && c.Username != "" && c.Password != "" && !bytes.ContainsRune([]byte(c.Username), ':') {
				clean[h] = c
			}
		}
		b, err := Marshal(clean)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Unmarshal(b)
		if err != nil || !reflect.DeepEqual(again, clean) {
			t.Fatalf("round trip of %v: %v %v", clean, again, err)
		}
	})
}
