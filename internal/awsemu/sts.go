package awsemu

import (
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/arn"
)

const stsNS = "https://sts.amazonaws.com/doc/2011-06-15/"

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

type stsAssumeResponse struct {
	XMLName xml.Name `xml:"AssumeRoleWithWebIdentityResponse"`
	NS      string   `xml:"xmlns,attr"`
	Result  struct {
		Credentials     stsCredentials
		AssumedRoleUser struct{ Arn, AssumedRoleId string }
		Provider        string
		Audience        string
	} `xml:"AssumeRoleWithWebIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type stsCallerResponse struct {
	XMLName xml.Name `xml:"GetCallerIdentityResponse"`
	NS      string   `xml:"xmlns,attr"`
	Result  struct {
		Arn, UserId, Account string
	} `xml:"GetCallerIdentityResult"`
	RequestID string `xml:"ResponseMetadata>RequestId"`
}

type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	NS      string   `xml:"xmlns,attr"`
	Error   struct {
		Type, Code, Message string
	}
	RequestID string `xml:"RequestId"`
}

// serveSTS answers the STS query-protocol actions the provider uses.
func (c *call) serveSTS() {
	if !c.preamble() {
		return
	}
	switch c.rec.Operation {
	case "AssumeRoleWithWebIdentity":
		c.assumeRoleWithWebIdentity()
	case "GetCallerIdentity":
		if !c.authenticate("sts") || c.injectedError() {
			return
		}
		if c.denied() {
			c.deny()
			return
		}
		var out stsCallerResponse
		out.NS, out.RequestID = stsNS, c.requestID()
		out.Result.Arn, out.Result.UserId, out.Result.Account = c.cred.ARN, c.cred.UserID, arn.Account(c.cred.ARN)
		c.stsReply(out)
	default:
		c.stsError(http.StatusBadRequest, "InvalidAction", fmt.Sprintf("Could not find operation %s for version 2011-06-15", c.rec.Operation))
	}
}

// assumeRoleWithWebIdentity is unsigned, like the real call: the web identity
// token is the credential. Once an OIDC provider is registered the token and
// the role's trust policy are judged as IAM does (verifyWebIdentity,
// policyDocument.allows); before that any token is accepted. Either way the
// token is only fingerprinted into the log so tests can tell which was sent.
func (c *call) assumeRoleWithWebIdentity() {
	r := c.r
	roleARN, session, token := r.FormValue("RoleArn"), r.FormValue("RoleSessionName"), r.FormValue("WebIdentityToken")
	if token != "" {
		c.rec.WebIdentityTokenSHA256 = sha256Hex([]byte(token))[:12]
	}
	if c.injectedError() {
		return
	}
	if _, _, err := splitRoleARN(roleARN); err != nil || session == "" || token == "" {
		c.stsError(http.StatusBadRequest, "ValidationError",
			"RoleArn must be an IAM role ARN and RoleSessionName and WebIdentityToken must be set")
		return
	}
	assumed := AssumedRoleARN(roleARN, session)
	c.rec.Principal = assumed
	c.s.mu.Lock()
	refused := c.s.refused[roleARN]
	strict := len(c.s.providers) > 0
	rl := c.s.roles[roleARN]
	c.s.mu.Unlock()
	if refused || c.denied() {
		c.fail("denied", msgNotAuthorized)
		return
	}
	provider, audience := "awsemu", "sts.amazonaws.com"
	if strict {
		id, err := c.s.verifyWebIdentity(r.Context(), token)
		if err != nil {
			var f *stsFailure
			errors.As(err, &f)
			c.stsError(f.status, f.code, f.message)
			return
		}
		c.rec.WebIdentitySubject, c.rec.WebIdentityAudience = id.sub, id.aud
		// A role that does not exist is refused exactly like one whose
		// trust policy does not match: AWS does not tell them apart.
		if rl == nil || !rl.policy.allows(c.s.OIDCProviderARN(id.provider.URL), id) {
			c.fail("denied", msgNotAuthorized)
			return
		}
		provider, audience = id.provider.hostPath, id.aud
	}
	ttl := c.s.opts.CredentialTTL
	if d, err := strconv.Atoi(r.FormValue("DurationSeconds")); err == nil && d > 0 {
		ttl = time.Duration(d) * time.Second
	}
	userID := roleUserID(roleARN) + ":" + session
	cr := c.s.newCredential(assumed, userID, ttl)
	c.rec.AccessKeyID = cr.AKID
	var out stsAssumeResponse
	out.NS, out.RequestID = stsNS, c.requestID()
	out.Result.Credentials = stsCredentials{cr.AKID, cr.Secret, cr.Token, cr.Expires.Format(time.RFC3339)}
	out.Result.AssumedRoleUser.Arn, out.Result.AssumedRoleUser.AssumedRoleId = assumed, userID
	out.Result.Provider, out.Result.Audience = provider, audience
	c.stsReply(out)
}

func (c *call) stsReply(v any) {
	b, err := xml.Marshal(v)
	if err != nil {
		panic(err) // only our own plain structs are marshalled
	}
	c.reply(http.StatusOK, "text/xml", b)
}

// stsError answers in the query protocol's ErrorResponse shape.
func (c *call) stsError(status int, code, msg string) {
	c.rec.Error = code
	var out stsErrorResponse
	out.NS, out.RequestID = stsNS, c.requestID()
	out.Error.Type, out.Error.Code, out.Error.Message = "Sender", code, msg
	if status >= 500 {
		out.Error.Type = "Receiver"
	}
	b, err := xml.Marshal(out)
	if err != nil {
		panic(err)
	}
	c.reply(status, "text/xml", b)
}
