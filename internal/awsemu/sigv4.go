package awsemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// This file re-implements SigV4 verification from the AWS specification
// instead of reusing the SDK signer: a check built on the signer under test
// would accept whatever that signer produces, including its bugs.

const (
	sigAlgorithm = "AWS4-HMAC-SHA256"
	amzDateFmt   = "20060102T150405Z"
)

// sigScope is the parsed credential scope of a signed request.
type sigScope struct {
	AccessKeyID, Date, Region, Service string
}

// sigError says why a signature was rejected. Kind selects the AWS error code
// family: "sig" (signature mismatch or malformed auth), "key" (unknown access
// key or session token), "expired" (credentials past their expiration),
// "skew" (request time outside the allowed window).
type sigError struct {
	Kind, Msg string
}

func (e *sigError) Error() string { return e.Msg }

// secretLookup returns the secret and the session token (empty for long-term
// keys) of an access key ID, and whether the key is known.
type secretLookup func(akid string) (secret, token string, ok bool)

// verifySigV4 checks the Authorization header of r (whose body has already
// been read into body) and returns the credential scope it was signed for.
func verifySigV4(r *http.Request, body []byte, now time.Time, maxSkew time.Duration, lookup secretLookup) (sigScope, error) {
	var sc sigScope
	auth := r.Header.Get("Authorization")
	if !strings.HasPrefix(auth, sigAlgorithm+" ") {
		return sc, &sigError{"missing", "Missing Authentication Token"}
	}
	fields := map[string]string{}
	for _, part := range strings.Split(strings.TrimPrefix(auth, sigAlgorithm+" "), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return sc, &sigError{"sig", "Authorization header requires Credential, SignedHeaders and Signature parameters."}
		}
		fields[k] = v
	}
	cred, signedHeaders, signature := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	parts := strings.Split(cred, "/")
	if cred == "" || signedHeaders == "" || signature == "" || len(parts) != 5 || parts[4] != "aws4_request" {
		return sc, &sigError{"sig", "Authorization header requires Credential, SignedHeaders and Signature parameters."}
	}
	sc = sigScope{AccessKeyID: parts[0], Date: parts[1], Region: parts[2], Service: parts[3]}

	amzDate := r.Header.Get("X-Amz-Date")
	if amzDate == "" {
		return sc, &sigError{"sig", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."}
	}
	reqTime, err := time.Parse(amzDateFmt, amzDate)
	if err != nil {
		return sc, &sigError{"sig", fmt.Sprintf("Invalid X-Amz-Date %q", amzDate)}
	}
	if !strings.HasPrefix(amzDate, sc.Date) {
		return sc, &sigError{"sig", fmt.Sprintf("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s'", sc.Date, amzDate[:8])}
	}
	if d := now.Sub(reqTime); d > maxSkew || d < -maxSkew {
		return sc, &sigError{"skew", fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - %s.)",
			amzDate, now.Add(-maxSkew).UTC().Format(amzDateFmt), now.UTC().Format(amzDateFmt), maxSkew)}
	}
	names := strings.Split(signedHeaders, ";")
	if !sort.StringsAreSorted(names) || !slices.Contains(names, "host") {
		return sc, &sigError{"sig", "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."}
	}
	if !slices.Contains(names, "x-amz-date") {
		return sc, &sigError{"sig", "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization."}
	}

	secret, token, ok := lookup(sc.AccessKeyID)
	if !ok {
		return sc, &sigError{"key", "The security token included in the request is invalid."}
	}
	// A session token must accompany temporary keys, and it must be signed so
	// it cannot be swapped in transit.
	if got := r.Header.Get("X-Amz-Security-Token"); got != token || (token != "" && !slices.Contains(names, "x-amz-security-token")) {
		return sc, &sigError{"key", "The security token included in the request is invalid."}
	}

	payloadHash := sha256Hex(body)
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != "UNSIGNED-PAYLOAD" && h != payloadHash {
		return sc, &sigError{"sig", "The provided 'x-amz-content-sha256' header does not match what was computed."}
	}
	creq := canonicalRequest(r, names, payloadHash)
	scope := strings.Join(parts[1:], "/")
	sts := strings.Join([]string{sigAlgorithm, amzDate, scope, sha256Hex([]byte(creq))}, "\n")
	want := hex.EncodeToString(hmacSHA256(signingKey(secret, sc.Date, sc.Region, sc.Service), sts))
	if !hmac.Equal([]byte(want), []byte(signature)) {
		return sc, &sigError{"sig", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."}
	}
	return sc, nil
}

func canonicalRequest(r *http.Request, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	b.WriteString(canonicalURI(r.URL) + "\n")
	b.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, name := range signed {
		b.WriteString(name + ":" + canonicalHeaderValue(r, name) + "\n")
	}
	b.WriteString("\n" + strings.Join(signed, ";") + "\n" + payloadHash)
	return b.String()
}

// canonicalURI encodes the already-escaped path once more, as SigV4 requires
// for every service except S3.
func canonicalURI(u *url.URL) string {
	p := u.EscapedPath()
	if p == "" {
		return "/"
	}
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		if c := p[i]; c == '/' || isUnreserved(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, uriEncode(k)+"="+uriEncode(v))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// canonicalHeaderValue reads a header the way the client saw it: net/http
// moves Host and (sometimes) Content-Length out of the header map.
func canonicalHeaderValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(r.ContentLength, 10)
	}
	vals := r.Header.Values(name)
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; isUnreserved(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
