package kubeapi

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Claims is what a service account token says about itself, read without
// checking its signature: the doctor shows it to explain why STS refused
// the token; STS checks the signature.
type Claims struct {
	Issuer    string
	Subject   string
	Audience  []string
	ExpiresAt time.Time
}

// DecodeClaims reads the claims of a JWT. Its errors never quote the token.
func DecodeClaims(token string) (Claims, error) {
	parts := strings.Split(strings.TrimSpace(token), ".")
	if len(parts) != 3 {
		return Claims{}, fmt.Errorf("not a JWT: %d dot-separated parts, want 3", len(parts))
	}
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return Claims{}, errors.New("not a JWT: the payload is not base64url")
	}
	var p struct {
		Iss string          `json:"iss"`
		Sub string          `json:"sub"`
		Aud json.RawMessage `json:"aud"`
		Exp *json.Number    `json:"exp"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return Claims{}, errors.New("not a JWT: the payload is not a JSON object")
	}
	c := Claims{Issuer: p.Iss, Subject: p.Sub}
	if len(p.Aud) > 0 {
		// aud is one string or an array of them (RFC 7519 4.1.3).
		var one string
		if json.Unmarshal(p.Aud, &one) == nil {
			c.Audience = []string{one}
		} else if err := json.Unmarshal(p.Aud, &c.Audience); err != nil {
			return Claims{}, errors.New("the token's aud claim is neither a string nor a list of strings")
		}
	}
	if p.Exp != nil {
		f, err := p.Exp.Float64()
		if err != nil {
			return Claims{}, errors.New("the token's exp claim is not a number")
		}
		c.ExpiresAt = time.Unix(int64(f), 0)
	}
	return c, nil
}

// ServiceAccountSubject is the sub claim of tokens for a service account.
func ServiceAccountSubject(namespace, name string) string {
	return "system:serviceaccount:" + namespace + ":" + name
}
