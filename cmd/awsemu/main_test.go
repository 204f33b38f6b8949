package main

import "testing"

func TestRunRefusesBadInvocations(t *testing.T) {
	tests := []struct {
		args []string
		want int
	}{
		{[]string{"-addr", "0.0.0.0:0"}, 1},
		{[]string{"-addr", "192.168.1.1:8080"}, 1},
		{[]string{"-nope"}, 2},
		{[]string{"extra"}, 2},
		{[]string{"-static-key", "AKID:secret"}, 2},
	}
	for _, tt := range tests {
		if got := run(tt.args); got != tt.want {
			t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.want)
		}
	}
}

func TestStaticKeyFlag(t *testing.T) {
	k := staticKeys{}
	if err := k.Set("AKIAEXAMPLE:se:cret:arn:aws:iam::123456789012:user/ci"); err == nil {
		t.Fatal("a colon in the secret must not silently shift the ARN")
	}
	if err := k.Set("AKIAEXAMPLE:secret:arn:aws:iam::123456789012:user/ci"); err != nil {
		t.Fatal(err)
	}
	if got := k["AKIAEXAMPLE"]; got.Secret != "secret" || got.ARN != "arn:aws:iam::123456789012:user/ci" {
		t.Errorf("parsed %+v", got)
	}
}
