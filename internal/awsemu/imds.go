package awsemu

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// serveIMDS answers the IMDSv2 paths the SDK's credential chain and region
// lookups read (feature/ec2/imds, credentials/ec2rolecreds). IMDSv1 is not
// offered: every GET needs a session token, as on instances that enforce
// IMDSv2.
func (c *call) serveIMDS() {
	s, r := c.s, c.r
	p := r.URL.Path
	credsPath := "/latest/meta-data/iam/security-credentials/"
	switch {
	case p == "/latest/api/token":
		c.rec.Operation = "GetToken"
	case p == credsPath || p+"/" == credsPath:
		c.rec.Operation = "ListRoles"
	case strings.HasPrefix(p, credsPath):
		c.rec.Operation = "GetCredentials"
	case p == "/latest/meta-data/iam/info":
		c.rec.Operation = "GetIAMInfo"
	case p == "/latest/meta-data/placement/region":
		c.rec.Operation = "GetRegion"
	case p == "/latest/dynamic/instance-identity/document":
		c.rec.Operation = "GetInstanceIdentityDocument"
	default:
		c.rec.Operation = "GetMetadata"
	}
	if !c.preamble() || c.injectedError() {
		return
	}
	now := s.opts.Now()
	if c.rec.Operation == "GetToken" {
		ttl, err := strconv.Atoi(r.Header.Get("X-Aws-Ec2-Metadata-Token-Ttl-Seconds"))
		if r.Method != http.MethodPut || err != nil || ttl < 1 || ttl > 21600 {
			c.imdsError(http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		if len(s.imdsTokens) > 1024 { // long benchmarks: forget expired tokens
			for k, exp := range s.imdsTokens {
				if now.After(exp) {
					delete(s.imdsTokens, k)
				}
			}
		}
		tok := "AQAEA" + s.randString(51, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
		s.imdsTokens[tok] = now.Add(time.Duration(ttl) * time.Second)
		s.mu.Unlock()
		c.w.Header().Set("X-Aws-Ec2-Metadata-Token-Ttl-Seconds", strconv.Itoa(ttl))
		c.reply(http.StatusOK, "text/plain", []byte(tok))
		return
	}
	s.mu.Lock()
	exp, ok := s.imdsTokens[r.Header.Get("X-Aws-Ec2-Metadata-Token")]
	s.mu.Unlock()
	if r.Method != http.MethodGet || !ok || now.After(exp) {
		c.imdsError(http.StatusUnauthorized)
		return
	}
	o := s.opts
	c.rec.Principal = s.InstanceARN()
	switch c.rec.Operation {
	case "ListRoles":
		c.reply(http.StatusOK, "text/plain", []byte(o.RoleName))
	case "GetCredentials":
		if strings.TrimPrefix(p, credsPath) != o.RoleName {
			c.imdsError(http.StatusNotFound)
			return
		}
		cr := s.instanceCredential()
		c.rec.AccessKeyID = cr.AKID
		c.reply(http.StatusOK, "text/plain", mustJSON(map[string]string{
			"Code": "Success", "LastUpdated": now.UTC().Format(time.RFC3339), "Type": "AWS-HMAC",
			"AccessKeyId": cr.AKID, "SecretAccessKey": cr.Secret, "Token": cr.Token,
			"Expiration": cr.Expires.Format(time.RFC3339),
		}))
	case "GetIAMInfo":
		c.reply(http.StatusOK, "text/plain", mustJSON(map[string]string{
			"Code": "Success", "LastUpdated": now.UTC().Format(time.RFC3339),
			"InstanceProfileArn": "arn:aws:iam::" + o.Account + ":instance-profile/" + o.RoleName,
			"InstanceProfileId":  "AIPA" + roleUserID(s.RoleARN())[4:],
		}))
	case "GetRegion":
		c.reply(http.StatusOK, "text/plain", []byte(o.Region))
	case "GetInstanceIdentityDocument":
		c.reply(http.StatusOK, "text/plain", mustJSON(map[string]any{
			"accountId": o.Account, "region": o.Region, "availabilityZone": o.Region + "a",
			"instanceId": InstanceID, "instanceType": "m5.large", "architecture": "x86_64",
			"imageId": "ami-0123456789abcdef0", "privateIp": "10.0.0.10", "version": "2017-09-30",
			"pendingTime": now.UTC().Add(-time.Hour).Format(time.RFC3339),
		}))
	default:
		switch p {
		case "/latest/meta-data/instance-id":
			c.reply(http.StatusOK, "text/plain", []byte(InstanceID))
		case "/latest/meta-data/placement/availability-zone":
			c.reply(http.StatusOK, "text/plain", []byte(o.Region+"a"))
		default:
			c.imdsError(http.StatusNotFound)
		}
	}
}

// instanceCredential returns the instance profile's current keys, rotating
// them once half their lifetime has passed, as EC2 does well before expiry.
func (s *Server) instanceCredential() *credential {
	s.mu.Lock()
	cur := s.imdsCred
	s.mu.Unlock()
	if cur != nil && s.opts.Now().Add(s.opts.CredentialTTL/2).Before(cur.Expires) {
		return cur
	}
	cr := s.newCredential(s.InstanceARN(), roleUserID(s.RoleARN())+":"+InstanceID, s.opts.CredentialTTL)
	s.mu.Lock()
	s.imdsCred = cr
	s.mu.Unlock()
	return cr
}
