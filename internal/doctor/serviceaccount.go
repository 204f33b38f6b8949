package doctor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/arn"
	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/kubeapi"
	"github.com/kubecred/ecr-credential-provider/internal/noderbac"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/providerconfig"
)

// KubeletKubeconfigs are where kubelets keep their own kubeconfig when the
// running kubelet does not say: kubeadm, plain systemd units, k3s and RKE2.
var KubeletKubeconfigs = []string{
	"/etc/kubernetes/kubelet.conf",
	"/var/lib/kubelet/kubeconfig",
	"/var/lib/rancher/k3s/agent/kubelet.kubeconfig",
	"/var/lib/rancher/rke2/agent/kubelet.kubeconfig",
}

// ParseServiceAccount reads "NAMESPACE/NAME".
func ParseServiceAccount(s string) (namespace, name string, err error) {
	ns, n, ok := strings.Cut(s, "/")
	if !ok || ns == "" || n == "" || strings.Contains(n, "/") {
		return "", "", fmt.Errorf("--service-account %q is not NAMESPACE/NAME, e.g. team-a/app", s)
	}
	return ns, n, nil
}

// saRun is what the per-pod checks learn from each other.
type saRun struct {
	ns, name  string
	provider  *providerconfig.CredentialProvider
	audience  string
	api       *kubeapi.Client
	apiFrom   string // the kubeconfig used, as the node sees it
	apiUser   string // its user, as the API server names it, or the kubeconfig
	apiErr    string // why there is no client
	roleARN   string
	tokenFrom string
	aws       AWS  // as the pod's role
	assumed   bool // the role was assumed
}

// checkServiceAccountPath checks what a pod of the service account needs
// to pull with its own role: the provider asks the kubelet for its token,
// the node may request that audience, the service account names a role
// the kubelet passes on, STS lets the token assume that role, and the role
// may get an ECR token.
func (r *run) checkServiceAccountPath(ctx context.Context) []Check {
	ns, name, _ := ParseServiceAccount(r.o.ServiceAccount)
	s := &saRun{ns: ns, name: name, audience: providerconfig.DefaultAudience}
	out := []Check{r.checkTokenAttributes(s)}
	r.apiClient(s)
	out = append(out, r.guard(ctx, CheckAudienceRBAC, func(ctx context.Context) Check { return r.checkAudienceRBAC(ctx, s) }))
	out = append(out, r.guard(ctx, CheckServiceAccount, func(ctx context.Context) Check { return r.checkServiceAccount(ctx, s) }))
	out = append(out, r.guard(ctx, CheckWebIdentity, func(ctx context.Context) Check { return r.checkWebIdentity(ctx, s) }))
	out = append(out, r.guard(ctx, CheckPodAuthToken, func(ctx context.Context) Check { return r.checkPodAuthToken(ctx, s) }))
	return out
}

// checkPodAuthToken asks ECR for a token as the pod's role: the role needs
// ECR permissions of its own, the node's do not count.
func (r *run) checkPodAuthToken(ctx context.Context, s *saRun) Check {
	if !s.assumed {
		return skipped(CheckPodAuthToken, "the role was not assumed (see "+title(CheckWebIdentity)+")")
	}
	if !r.reg.ECR {
		return skipped(CheckPodAuthToken, "not an ECR image")
	}
	action := "ecr:GetAuthorizationToken"
	if r.reg.Public {
		action = "ecr-public:GetAuthorizationToken"
	}
	cctx, cancel := context.WithTimeout(ctx, 2*r.o.CheckTimeout)
	defer cancel()
	t, err := s.aws.AuthToken(cctx)
	if err != nil {
		c := r.tokenFailure(err, action, s.roleARN)
		c.ID, c.Title = CheckPodAuthToken, title(CheckPodAuthToken)
		return c
	}
	r.secrets.add(t.Password)
	c := passed(CheckPodAuthToken, "token for user "+t.Username+" as "+s.roleARN)
	c.fact("roleArn", s.roleARN)
	return c
}

func (r *run) checkTokenAttributes(s *saRun) Check {
	if len(r.wiring.matching) == 0 {
		return skipped(CheckTokenAttributes, "no provider config matches the image (see "+title(CheckProviderMatch)+"); assuming audience "+s.audience)
	}
	p := r.wiring.matching[0]
	s.provider = &p
	t := p.TokenAttributes
	if t == nil {
		c := failed(CheckTokenAttributes, fmt.Sprintf("provider %s has no tokenAttributes: the kubelet sends it no service account token, so every pod pulls with the node's credentials", p.Name),
			"ecr-credential-provider install --per-pod-roles (or merge the tokenAttributes of 'ecr-credential-provider config print --per-pod-roles' into the config), then restart the kubelet; kubelet v1.33 also needs --feature-gates=KubeletServiceAccountTokenForCredentialProviders=true")
		return c
	}
	s.audience = t.ServiceAccountTokenAudience
	sum := fmt.Sprintf("provider %s asks for tokens with audience %s", p.Name, t.ServiceAccountTokenAudience)
	if len(t.RequiredServiceAccountAnnotationKeys) > 0 {
		sum += ", required annotations " + strings.Join(t.RequiredServiceAccountAnnotationKeys, ", ")
	}
	if len(t.OptionalServiceAccountAnnotationKeys) > 0 {
		sum += ", optional annotations " + strings.Join(t.OptionalServiceAccountAnnotationKeys, ", ")
	}
	c := passed(CheckTokenAttributes, sum)
	c.fact("audience", t.ServiceAccountTokenAudience)
	c.fact("cacheType", t.CacheType)
	return c
}

// apiClient finds a kubeconfig: the one given, the running kubelet's, or
// the first of the usual places.
func (r *run) apiClient(s *saRun) {
	var tried []string
	candidates := KubeletKubeconfigs
	if r.o.Kubeconfig != "" {
		candidates = []string{r.o.Kubeconfig}
	} else if r.wiring.kubeconfig != "" {
		candidates = append([]string{r.wiring.kubeconfig}, candidates...)
	}
	for _, p := range candidates {
		host := r.hostPath(p)
		data, err := os.ReadFile(host)
		if err != nil {
			tried = append(tried, p)
			if r.o.Kubeconfig != "" {
				s.apiErr = fmt.Sprintf("kubeconfig %s: %v", p, err)
				return
			}
			continue
		}
		cfg, err := kubeapi.Parse(data, filepath.Dir(p), func(f string) ([]byte, error) { return os.ReadFile(r.hostPath(f)) })
		if err == nil {
			s.api, err = kubeapi.New(cfg, r.o.CheckTimeout)
		}
		if err != nil {
			s.apiErr = fmt.Sprintf("kubeconfig %s: %v", p, err)
			return
		}
		if cfg.Token != "" {
			r.secrets.add(cfg.Token)
		}
		s.apiFrom, s.apiUser = p, p
		if u := cfg.CertUser(); u != "" {
			s.apiUser = u + " from " + p
		}
		return
	}
	s.apiErr = "no kubeconfig found (looked at " + strings.Join(tried, ", ") + ")"
}

func (r *run) noAPI(id string, s *saRun) Check {
	return failed(id, s.apiErr, "pass the kubelet's own kubeconfig with --kubeconfig FILE (the kubelet's --kubeconfig flag names it)")
}

func (r *run) checkAudienceRBAC(ctx context.Context, s *saRun) Check {
	if s.api == nil {
		return r.noAPI(CheckAudienceRBAC, s)
	}
	// NodeRestriction asks the authorizer exactly this when the kubelet
	// requests a token for a pod of this service account.
	acc, err := s.api.CanI(ctx, kubeapi.ResourceAttributes{Namespace: s.ns, Verb: noderbac.Verb, Resource: s.audience, Name: s.name})
	if err != nil {
		return failed(CheckAudienceRBAC, "SelfSubjectAccessReview as "+s.apiFrom+"'s user failed: "+oneLine(err.Error()), "check that the kubeconfig's server is reachable and its credentials valid (kubectl --kubeconfig "+s.apiFrom+" get --raw /version)")
	}
	if !acc.Allowed {
		rbac := noderbac.Apply
		if s.audience != providerconfig.DefaultAudience {
			rbac = strings.Replace(rbac, " rbac ", " rbac --audience "+s.audience+" ", 1)
		}
		c := failed(CheckAudienceRBAC, fmt.Sprintf("the node (%s) may not request service account tokens for audience %q: the kubelet never calls the plugin for these pods and the pull gets 401", s.apiUser, s.audience),
			fmt.Sprintf("create the ClusterRole %s (verb %s on resource %q) bound to group %s: %s", noderbac.ClusterRoleName, noderbac.Verb, s.audience, noderbac.NodesGroup, rbac))
		c.fact("clusterRole", noderbac.ClusterRoleName)
		if acc.Reason != "" {
			c.Notes = append(c.Notes, "API server: "+acc.Reason)
		}
		c.Notes = append(c.Notes, "the API server skips this check for pods that mount a projected service account token with this audience, and for all pods when its feature gate ServiceAccountNodeAudienceRestriction is off")
		return c
	}
	c := passed(CheckAudienceRBAC, fmt.Sprintf("the node (%s) may request tokens for audience %q", s.apiUser, s.audience))
	c.fact("kubeconfig", s.apiFrom)
	return c
}

func (r *run) checkServiceAccount(ctx context.Context, s *saRun) Check {
	if s.api == nil {
		return r.noAPI(CheckServiceAccount, s)
	}
	who := s.ns + "/" + s.name
	sa, err := s.api.GetServiceAccount(ctx, s.ns, s.name)
	switch {
	case kubeapi.IsNotFound(err):
		return failed(CheckServiceAccount, "service account "+who+" does not exist", "create it (kubectl create serviceaccount "+s.name+" -n "+s.ns+"), or fix the pod's serviceAccountName")
	case kubeapi.IsForbidden(err):
		return failed(CheckServiceAccount, "the node may not read service account "+who+": the Node authorizer lets a node read only the service accounts of pods scheduled to it",
			"run the doctor after a pod of "+who+" is scheduled to this node, or pass --kubeconfig with a user who may read it")
	case err != nil:
		return failed(CheckServiceAccount, "reading service account "+who+" failed: "+oneLine(err.Error()), "check the kubeconfig's server and credentials")
	}
	keys := providerconfig.RoleAnnotationKeys(providerconfig.CredentialProvider{})
	var required, optional []string
	if s.provider != nil {
		keys = providerconfig.RoleAnnotationKeys(*s.provider)
		if t := s.provider.TokenAttributes; t != nil {
			required, optional = t.RequiredServiceAccountAnnotationKeys, t.OptionalServiceAccountAnnotationKeys
		}
	}
	ann := sa.Metadata.Annotations
	for _, k := range required {
		if ann[k] == "" {
			return failed(CheckServiceAccount, fmt.Sprintf("service account %s lacks the annotation %s, which tokenAttributes requires: the kubelet skips the plugin for its pods and the pull gets 401", who, k),
				fmt.Sprintf("kubectl annotate serviceaccount -n %s %s %s=VALUE, or move %s to optionalServiceAccountAnnotationKeys", s.ns, s.name, k, k))
		}
	}
	// Without tokenAttributes (see that check) nothing is passed on at all.
	known := s.provider != nil && s.provider.TokenAttributes != nil
	passedOn := func(k string) bool { return !known || slices.Contains(required, k) || slices.Contains(optional, k) }
	// The plugin reads the first of its keys that the kubelet passed on.
	for _, k := range keys {
		v := ann[k]
		if v == "" {
			continue
		}
		if !passedOn(k) {
			return failed(CheckServiceAccount, fmt.Sprintf("service account %s names role %s in %s, but tokenAttributes lists %s in neither required nor optional keys: the kubelet does not pass it, and its pods pull with the node's credentials", who, v, k, k),
				"add "+k+" to the provider's tokenAttributes.optionalServiceAccountAnnotationKeys ('ecr-credential-provider install --per-pod-roles' does)")
		}
		if _, err := plugin.IdentityFor(protocol.Request{ServiceAccountToken: "x", ServiceAccountAnnotations: map[string]string{k: v}}, []string{k}, func(string) string { return "" }); err != nil {
			return failed(CheckServiceAccount, "service account "+who+": "+err.Error(), "kubectl annotate --overwrite serviceaccount -n "+s.ns+" "+s.name+" "+k+"=arn:aws:iam::ACCOUNT:role/NAME")
		}
		s.roleARN = v
		c := passed(CheckServiceAccount, fmt.Sprintf("service account %s names role %s in %s, which the kubelet passes to the plugin", who, v, k))
		c.fact("roleArn", v)
		c.fact("annotation", k)
		return c
	}
	return failed(CheckServiceAccount, fmt.Sprintf("service account %s has no role annotation (%s): its pods pull with the node's credentials", who, strings.Join(keys, " or ")),
		fmt.Sprintf("kubectl annotate serviceaccount -n %s %s %s=arn:aws:iam::ACCOUNT:role/NAME", s.ns, s.name, keys[0]))
}

// serviceAccountToken gets a token the way the kubelet would, or takes
// the one given.
func (r *run) serviceAccountToken(ctx context.Context, s *saRun) (string, *Check) {
	if r.o.ServiceAccountToken != "" {
		s.tokenFrom = "--service-account-token"
		return strings.TrimSpace(r.o.ServiceAccountToken), nil
	}
	create := fmt.Sprintf("kubectl create token %s -n %s --audience %s > sa.jwt, then pass --service-account-token sa.jwt", s.name, s.ns, s.audience)
	if s.api == nil {
		c := skipped(CheckWebIdentity, "no token: no kubeconfig to request one with, and no --service-account-token (from: "+create+")")
		return "", &c
	}
	tok, err := s.api.CreateToken(ctx, s.ns, s.name, []string{s.audience}, 10*time.Minute)
	if err != nil {
		why := "the API server refused the node a token for " + s.ns + "/" + s.name
		if kubeapi.IsForbidden(err) {
			why += " (NodeRestriction lets a node request tokens only for pods bound to it)"
		} else {
			why += ": " + oneLine(err.Error())
		}
		// The doctor's own limit, not the pull's: the kubelet asks with a pod.
		c := skipped(CheckWebIdentity, why+"; get one as a cluster user: "+create)
		return "", &c
	}
	s.tokenFrom = "a TokenRequest as the node"
	return tok.Value, nil
}

func (r *run) checkWebIdentity(ctx context.Context, s *saRun) Check {
	if s.roleARN == "" {
		return skipped(CheckWebIdentity, "no role to assume (see "+title(CheckServiceAccount)+")")
	}
	tok, c := r.serviceAccountToken(ctx, s)
	if c != nil {
		return *c
	}
	r.secrets.add(tok)
	cl, err := kubeapi.DecodeClaims(tok)
	if err != nil {
		return failed(CheckWebIdentity, "the service account token: "+err.Error(), "pass the token itself, as 'kubectl create token' prints it")
	}
	wantSub := kubeapi.ServiceAccountSubject(s.ns, s.name)
	switch {
	case cl.Subject != wantSub:
		return failed(CheckWebIdentity, fmt.Sprintf("the token is for %q, not %q", cl.Subject, wantSub), fmt.Sprintf("kubectl create token %s -n %s --audience %s", s.name, s.ns, s.audience))
	case !slices.Contains(cl.Audience, s.audience):
		return failed(CheckWebIdentity, fmt.Sprintf("the token's audience is %s, but the kubelet requests %q for the plugin", quoteList(cl.Audience), s.audience), fmt.Sprintf("kubectl create token %s -n %s --audience %s", s.name, s.ns, s.audience))
	case !cl.ExpiresAt.IsZero() && time.Now().After(cl.ExpiresAt):
		return failed(CheckWebIdentity, "the token expired at "+cl.ExpiresAt.UTC().Format(time.RFC3339), fmt.Sprintf("kubectl create token %s -n %s --audience %s", s.name, s.ns, s.audience))
	}
	cctx, cancel := context.WithTimeout(ctx, 2*r.o.CheckTimeout)
	defer cancel()
	var creds Creds
	reg := r.reg
	if reg.Region == "" {
		// Not an ECR host: STS still needs a region to pick its endpoint.
		reg.Region = ecrhost.PublicRegion
	}
	s.aws, err = r.o.NewPodAWS(cctx, reg, s.roleARN, tok)
	if err == nil {
		creds, err = s.aws.Credentials(cctx)
	}
	prov := newOIDCProvider(cl.Issuer, s.roleARN)
	if err == nil {
		s.assumed = true
		c := passed(CheckWebIdentity, fmt.Sprintf("assumed %s with a token for %s (aud %q, from %s): access key %s", s.roleARN, wantSub, s.audience, s.tokenFrom, maskKeyID(creds.AccessKeyID)))
		c.fact("roleArn", s.roleARN)
		c.fact("issuer", cl.Issuer)
		return c
	}
	return r.webIdentityFailure(err, s, prov, cl, wantSub)
}

func (r *run) webIdentityFailure(err error, s *saRun, prov oidcProvider, cl kubeapi.Claims, sub string) Check {
	code, msg, ok := apiError(err)
	head := webIdentityAction + " of " + s.roleARN + " failed: "
	if !ok {
		return failed(CheckWebIdentity, head+oneLine(err.Error()), "see the network checks; STS must be reachable from the node")
	}
	head += code + ": " + oneLine(msg)
	var c Check
	switch {
	case code == "InvalidIdentityToken" && strings.Contains(msg, "No OpenIDConnect provider"):
		c = failed(CheckWebIdentity, head,
			fmt.Sprintf("create the IAM OIDC provider for the cluster's issuer in account %s: aws iam create-open-id-connect-provider --url %s --client-id-list %s", arn.Account(s.roleARN), cl.Issuer, s.audience))
	case code == "InvalidIdentityToken" && strings.Contains(strings.ToLower(msg), "audience"):
		c = failed(CheckWebIdentity, head+" (the aud condition of the OIDC provider: its client IDs lack "+fmt.Sprintf("%q", s.audience)+")",
			fmt.Sprintf("aws iam add-client-id-to-open-id-connect-provider --open-id-connect-provider-arn %s --client-id %s", prov.ARN, s.audience))
	case code == "InvalidIdentityToken":
		c = failed(CheckWebIdentity, head,
			"STS could not verify the token: AWS must reach "+cl.Issuer+"/.well-known/openid-configuration and its JWKS (the API server's --service-account-issuer and --service-account-jwks-uri), and the OIDC provider's thumbprint must match")
	case code == "ExpiredTokenException" || code == "ExpiredToken":
		c = failed(CheckWebIdentity, head, fmt.Sprintf("get a fresh token: kubectl create token %s -n %s --audience %s", s.name, s.ns, s.audience))
	case isAccessDenied(code):
		c = r.trustPolicyFailure(head, s, prov, cl, sub)
	default:
		c = failed(CheckWebIdentity, head, awsErrorRemedy(err, webIdentityAction))
	}
	c.fact("code", code)
	c.fact("issuer", cl.Issuer)
	c.fact("sub", cl.Subject)
	return c
}

// trustPolicyFailure explains an AccessDenied: the role's trust policy did
// not match the token. AWS does not say which condition refused it; with
// the policy in hand, the doctor does.
func (r *run) trustPolicyFailure(head string, s *saRun, prov oidcProvider, cl kubeapi.Claims, sub string) Check {
	fix := fmt.Sprintf("let the token assume the role: add the statement below to the trust policy of %s (aws iam update-assume-role-policy --role-name %s --policy-document file://trust.json replaces the whole policy: merge it with 'aws iam get-role --role-name %s --query Role.AssumeRolePolicyDocument' first)",
		s.roleARN, roleName(s.roleARN), roleName(s.roleARN))
	var c Check
	if len(r.o.TrustPolicy) == 0 {
		c = failed(CheckWebIdentity, head+fmt.Sprintf(" (the role's trust policy does not accept sub %q with aud %q from %s; AWS does not say which condition failed)", sub, s.audience, prov.ARN), fix)
		c.Notes = append(c.Notes, "pass --trust-policy FILE (from: aws iam get-role --role-name "+roleName(s.roleARN)+" --query Role.AssumeRolePolicyDocument) and the doctor names the failing condition")
	} else {
		v, err := evaluateTrust(r.o.TrustPolicy, prov, sub, cl.Audience)
		switch {
		case err != nil:
			c = failed(CheckWebIdentity, head+" (--trust-policy: "+err.Error()+")", fix)
		case v.Allowed:
			c = failed(CheckWebIdentity, head+" (the trust policy given accepts this token: it may not be the role's current policy, or another policy denies)", fix)
		default:
			c = failed(CheckWebIdentity, head+" (the trust policy refuses it: "+strings.Join(v.Failing, "; ")+")", fix)
		}
		if len(v.Unchecked) > 0 {
			c.Notes = append(c.Notes, "conditions not checked: "+strings.Join(v.Unchecked, ", "))
		}
	}
	c.Policy = prov.TrustStatement(sub, s.audience)
	return c
}

func roleName(roleARN string) string {
	return roleARN[strings.LastIndex(roleARN, "/")+1:]
}
