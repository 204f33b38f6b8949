package awsemu

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/arn"
)

// serveECR answers GetAuthorizationToken for ECR and ECR Public (AWS JSON 1.1).
func (c *call) serveECR() {
	if !c.preamble() {
		return
	}
	if !c.authenticate(c.rec.Target) || c.injectedError() || c.rateLimited() {
		return
	}
	if c.rec.Operation != "GetAuthorizationToken" {
		c.jsonError(http.StatusBadRequest, "UnknownOperationException", "awsemu emulates only GetAuthorizationToken")
		return
	}
	if c.denied() {
		c.deny()
		return
	}
	s := c.s
	// AWS's clock, as the SDK reads it: the response's Date.
	c.w.Header().Set("Date", s.opts.Now().UTC().Format(http.TimeFormat))
	token := base64.StdEncoding.EncodeToString([]byte("AWS:" + s.issueToken(c.rec.Principal, c.rec.Region)))
	expiresAt := s.opts.Now().Add(s.opts.TokenTTL).Unix()
	if c.rec.Target == TargetECRPublic {
		c.reply(http.StatusOK, "application/x-amz-json-1.1", mustJSON(map[string]any{
			"authorizationData": map[string]any{"authorizationToken": token, "expiresAt": expiresAt},
		}))
		return
	}
	var in struct {
		RegistryIDs []string `json:"registryIds"`
	}
	if len(c.body) > 0 {
		if err := json.Unmarshal(c.body, &in); err != nil {
			c.jsonError(http.StatusBadRequest, "SerializationException", "could not parse request body")
			return
		}
	}
	if len(in.RegistryIDs) == 0 {
		in.RegistryIDs = []string{arn.Account(c.rec.Principal)}
	}
	suffix := "amazonaws.com"
	if strings.HasPrefix(c.rec.Region, "cn-") {
		suffix = "amazonaws.com.cn"
	}
	var data []map[string]any
	for _, id := range in.RegistryIDs {
		data = append(data, map[string]any{
			"authorizationToken": token,
			"expiresAt":          expiresAt,
			"proxyEndpoint":      fmt.Sprintf("https://%s.dkr.ecr.%s.%s", id, c.rec.Region, suffix),
		})
	}
	c.reply(http.StatusOK, "application/x-amz-json-1.1", mustJSON(map[string]any{"authorizationData": data}))
}
