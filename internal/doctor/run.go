package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/ecrhost"
	"github.com/kubecred/ecr-credential-provider/internal/imageref"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
)

// run is the state of one doctor run: each check reads what earlier ones
// found.
type run struct {
	o       Options
	secrets *redactor
	reg     ecrhost.Registry
	ref     imageref.Reference
	wiring  wiring

	aws      AWS
	awsErr   error
	credsOK  bool
	ident    Identity
	identOK  bool
	apiURL   string
	probeMu  sync.Mutex
	probes   map[string]probeResult
	eps      map[string]endpoint
	tok      plugin.Token
	tokOK    bool
	mapped   *mapping
	rc       *registryClient
	loggedIn bool
	blob     string // a digest to try the layer path with
}

// Run checks everything a pull of o.Image depends on. It returns an error
// only for unusable options; every problem with the image, the node or AWS
// is a failed check in the report. The context bounds the whole run.
func Run(ctx context.Context, o Options) (*Report, error) {
	if strings.TrimSpace(o.Image) == "" {
		return nil, ErrNoImage
	}
	if o.RegistryEndpoint != "" {
		if _, err := endpointFromURL(roleRegistry, o.RegistryEndpoint); err != nil {
			return nil, err
		}
	}
	if o.ServiceAccount != "" {
		if _, _, err := ParseServiceAccount(o.ServiceAccount); err != nil {
			return nil, err
		}
	}
	o.defaults()
	r := &run{o: o, secrets: &redactor{}, probes: map[string]probeResult{}, eps: map[string]endpoint{}}
	rep := &Report{Image: o.Image}
	add := func(c Check) { rep.Checks = append(rep.Checks, c) }

	img := r.checkImage()
	add(img)
	if img.Status == StatusFail && r.reg.Host == "" {
		rep.finish(r)
		return rep, nil
	}
	for _, c := range r.checkWiring() {
		add(c)
	}
	if !r.reg.ECR {
		if c, ok := r.checkRegistryMap(); ok {
			add(c)
			add(r.checkRuntimeMirror())
			if r.mapped != nil {
				// The rest of the chain is the mapped ECR image's.
				given := r.o.Image
				r.o.Image = r.mapped.Image
				img = r.checkImage()
				r.o.Image = given
				img.Summary = "mapped to " + r.mapped.Image + ": " + img.Summary
				rep.Checks[0] = img
			}
		}
	}
	if o.ServiceAccount != "" {
		for _, c := range r.checkServiceAccountPath(ctx) {
			add(c)
		}
	}
	if !r.reg.ECR {
		for _, id := range []string{CheckCredentials, CheckIdentity, CheckNetECRAPI, CheckNetRegistry, CheckNetLayers, CheckAuthToken, CheckRegistry, CheckManifest, CheckLayerDownload} {
			add(skipped(id, "not an ECR image"))
		}
		add(r.guard(ctx, CheckPlugin, r.checkPlugin))
		rep.finish(r)
		return rep, nil
	}

	// Credentials and the three network paths don't depend on each other:
	// run them side by side so a run with several timeouts stays short.
	var creds, ident Check
	r.aws, r.awsErr = r.o.NewAWS(ctx, r.reg)
	r.planEndpoints(ctx)
	roles := []string{roleAPI, roleRegistry, roleLayers}
	var wg sync.WaitGroup
	wg.Go(func() {
		creds = r.guard(ctx, CheckCredentials, r.checkCredentials)
		ident = r.guard(ctx, CheckIdentity, r.checkIdentity)
	})
	for _, role := range roles {
		if ep, ok := r.eps[role]; ok && ctx.Err() == nil {
			wg.Go(func() { r.setProbe(role, r.probe(ctx, ep)) })
		}
	}
	wg.Wait()
	add(creds)
	add(ident)
	// Checks are built once every probe is in: whether the ECR endpoints
	// are VPC endpoints changes the advice for the S3 path.
	for _, role := range roles {
		add(r.checkNetwork(role))
	}
	add(r.guard(ctx, CheckAuthToken, r.checkAuthToken))
	add(r.guard(ctx, CheckRegistry, r.checkRegistryAuth))
	add(r.guard(ctx, CheckManifest, r.checkManifest))
	add(r.guard(ctx, CheckLayerDownload, r.checkLayerDownload))
	add(r.guard(ctx, CheckPlugin, r.checkPlugin))
	rep.finish(r)
	return rep, nil
}

// title is a check's title. A switch, not a map: a map literal would be
// built by the package's init in every plugin call.
func title(id string) string {
	switch id {
	case CheckImage:
		return "Image"
	case CheckKubelet:
		return "Kubelet wiring"
	case CheckProviderConfig:
		return "Provider config"
	case CheckProviderMatch:
		return "Provider match"
	case CheckProviderBinary:
		return "Provider binary"
	case CheckCredentials:
		return "AWS credentials"
	case CheckIdentity:
		return "AWS identity"
	case CheckNetECRAPI:
		return "Network: ECR API"
	case CheckNetRegistry:
		return "Network: registry"
	case CheckNetLayers:
		return "Network: S3 layers"
	case CheckAuthToken:
		return "GetAuthorizationToken"
	case CheckRegistry:
		return "Registry login"
	case CheckManifest:
		return "Manifest"
	case CheckLayerDownload:
		return "Layer download"
	case CheckPlugin:
		return "Installed plugin"
	case CheckRegistryMap:
		return "Registry map"
	case CheckRuntimeMirror:
		return "Runtime mirror"
	case CheckTokenAttributes:
		return "Per-pod: tokenAttributes"
	case CheckAudienceRBAC:
		return "Per-pod: audience RBAC"
	case CheckServiceAccount:
		return "Per-pod: service account"
	case CheckWebIdentity:
		return "Per-pod: web identity"
	case CheckPodAuthToken:
		return "Per-pod: role's ECR token"
	}
	return ""
}

// newCheck, passed, skipped, failed and fact are not inlined (go:noinline):
// the checks call them from some 300 places, and one out-of-line copy each
// keeps the plugin binary, which links every operator command, smaller.
//
//go:noinline
func newCheck(id string, st Status, summary string) Check {
	return Check{ID: id, Title: title(id), Status: st, Summary: summary}
}

//go:noinline
func passed(id, summary string) Check { return newCheck(id, StatusOK, summary) }

//go:noinline
func skipped(id, reason string) Check { return newCheck(id, StatusSkip, reason) }

//go:noinline
func failed(id, summary, remedy string) Check {
	c := newCheck(id, StatusFail, summary)
	c.Remedy = remedy
	return c
}

//go:noinline
func (c *Check) fact(k, v string) {
	if v == "" {
		return
	}
	if c.Facts == nil {
		c.Facts = map[string]string{}
	}
	c.Facts[k] = v
}

// guard runs a check unless the whole run's time is up, so no check starts
// that could not finish.
func (r *run) guard(ctx context.Context, id string, f func(context.Context) Check) Check {
	// The deadline is compared too: a dial can give up at the deadline a
	// moment before the context reports it.
	if dl, ok := ctx.Deadline(); ctx.Err() != nil || (ok && !time.Now().Before(dl)) {
		return skipped(id, "the doctor's --timeout ran out before this check")
	}
	return f(ctx)
}

func (rep *Report) finish(r *run) {
	var first *Check
	for i := range rep.Checks {
		c := &rep.Checks[i]
		if c.Status == StatusFail && !c.Advisory && first == nil {
			first = c
		}
	}
	m, _ := rep.Find(CheckManifest)
	switch {
	case first != nil:
		rep.Verdict = fmt.Sprintf("a pull would fail: %s: %s", first.Title, first.Summary)
	case m.Status != StatusOK:
		rep.Verdict = "a pull could not be shown to work: the manifest was not fetched (" + m.Summary + ")"
	default:
		rep.OK = true
		rep.Verdict = "a pull of this image would work"
		if k, _ := rep.Find(CheckKubelet); k.Status == StatusSkip {
			rep.Verdict += " with these credentials (the kubelet's wiring was not checked: " + k.Summary + ")"
		}
	}
	r.secrets.report(rep)
}

func (r *run) checkImage() Check {
	// The kubelet's own reference check first: a malformed reference is
	// not a registry's image at all, whatever host it would default to.
	ref, err := imageref.Parse(r.o.Image)
	if err != nil {
		reason := err
		if ierr := (*imageref.Error)(nil); errors.As(err, &ierr) {
			reason = ierr.Reason
		}
		return failed(CheckImage, fmt.Sprintf("%q is not a valid image reference: %v", r.o.Image, reason),
			"write the image as in the pod spec, [HOST/]REPOSITORY[:TAG|@DIGEST] in lower case, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/app:v1")
	}
	reg := ecrhost.Of(ref)
	r.reg = reg
	if !reg.ECR {
		c := failed(CheckImage, fmt.Sprintf("registry %s is not an ECR registry: this plugin only answers for ECR hosts", reg.Host),
			"ECR hosts look like ACCOUNT.dkr.ecr.REGION.amazonaws.com (or public.ecr.aws); for other registries use imagePullSecrets or their own credential provider")
		c.fact("host", reg.Host)
		return c
	}
	r.ref = ref
	var s string
	if reg.Public {
		s = fmt.Sprintf("%s: repository %s, %s %s (tokens from %s)", reg.Kind(), ref.Path, refKind(ref), ref.Identifier(), ecrhost.PublicRegion)
	} else {
		s = fmt.Sprintf("%s: account %s, region %s, repository %s, %s %s", reg.Kind(), reg.Account, reg.Region, ref.Path, refKind(ref), ref.Identifier())
	}
	c := passed(CheckImage, s)
	c.fact("host", reg.Host)
	c.fact("account", reg.Account)
	c.fact("region", reg.Region)
	c.fact("partition", reg.Partition)
	c.fact("repository", ref.Path)
	c.fact("reference", ref.Identifier())
	c.fact("kind", reg.Kind())
	if ref.Tag == "" && ref.Digest == "" {
		c.Notes = append(c.Notes, "no tag given: the runtime pulls :latest")
	}
	return c
}

func refKind(ref imageref.Reference) string {
	if ref.Digest != "" {
		return "digest"
	}
	return "tag"
}

func (r *run) checkCredentials(ctx context.Context) Check {
	if r.awsErr != nil {
		return failed(CheckCredentials, "loading the AWS configuration failed: "+oneLine(r.awsErr.Error()),
			"fix the setting the error names (AWS_PROFILE, AWS_CONFIG_FILE, AWS_SHARED_CREDENTIALS_FILE, or the provider's env in the CredentialProviderConfig)")
	}
	cctx, cancel := context.WithTimeout(ctx, r.o.CheckTimeout)
	defer cancel()
	cr, err := r.aws.Credentials(cctx)
	if err != nil {
		c := failed(CheckCredentials, "no credentials: the SDK's default chain found none ("+oneLine(err.Error())+")",
			"on EC2, attach an instance profile whose role has "+PolicyPrivateReadOnly+"; if one is attached, IMDS is not answering: check the instance's metadata options (http-endpoint enabled; hop limit 2 if the doctor runs in a container) and that AWS_EC2_METADATA_DISABLED is not set. Off EC2, give the provider credentials through its env in the CredentialProviderConfig (AWS_PROFILE, or web identity variables)")
		c.fact("source", cr.Source)
		return c
	}
	r.credsOK = true
	s := "from " + describeSource(cr.Source, r.o.Getenv) + ", access key " + maskKeyID(cr.AccessKeyID)
	if !cr.Expires.IsZero() {
		s += fmt.Sprintf(", expires in %s", time.Until(cr.Expires).Round(time.Minute))
	}
	c := passed(CheckCredentials, s)
	c.fact("source", cr.Source)
	c.fact("accessKeyId", maskKeyID(cr.AccessKeyID))
	if n := r.envDifference(); n != "" {
		c.Notes = append(c.Notes, n)
	}
	return c
}

// envDifference warns when the doctor's AWS settings differ from the
// kubelet's, whose environment the plugin inherits: the doctor may be
// testing credentials the plugin never sees.
func (r *run) envDifference() string {
	if r.wiring.environ == nil {
		return ""
	}
	names := func(env []string) []string {
		var out []string
		for _, kv := range env {
			k, _, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, "AWS_") {
				out = append(out, k)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	mine, theirs := names(r.o.Environ()), names(r.wiring.environ)
	var onlyMine, onlyTheirs []string
	for _, k := range mine {
		if !slices.Contains(theirs, k) {
			onlyMine = append(onlyMine, k)
		}
	}
	for _, k := range theirs {
		if !slices.Contains(mine, k) {
			onlyTheirs = append(onlyTheirs, k)
		}
	}
	if len(onlyMine) == 0 && len(onlyTheirs) == 0 {
		return ""
	}
	s := "the plugin runs with the kubelet's environment, which differs from this shell's:"
	if len(onlyMine) > 0 {
		s += " only here: " + strings.Join(onlyMine, ", ") + ";"
	}
	if len(onlyTheirs) > 0 {
		s += " only in the kubelet's: " + strings.Join(onlyTheirs, ", ") + ";"
	}
	return strings.TrimSuffix(s, ";") + " (the installed-plugin check runs it with the kubelet's)"
}

func (r *run) checkIdentity(ctx context.Context) Check {
	if !r.credsOK {
		return skipped(CheckIdentity, "no credentials to ask STS about")
	}
	cctx, cancel := context.WithTimeout(ctx, r.o.CheckTimeout)
	defer cancel()
	id, err := r.aws.Identity(cctx)
	if err != nil {
		c := failed(CheckIdentity, "sts:GetCallerIdentity failed: "+oneLine(err.Error()), awsErrorRemedy(err, "sts:GetCallerIdentity"))
		c.Advisory = true
		c.Notes = append(c.Notes, "a pull does not need STS; the doctor only uses it to tell whose credentials these are")
		return c
	}
	r.ident, r.identOK = id, true
	s := id.ARN + " (account " + id.Account + ")"
	c := passed(CheckIdentity, s)
	c.fact("arn", id.ARN)
	c.fact("account", id.Account)
	if role := RoleARN(id.ARN); role != id.ARN {
		c.fact("roleArn", role)
	}
	if !r.reg.Public && id.Account != r.reg.Account {
		c.Notes = append(c.Notes, fmt.Sprintf("cross-account: the image is in account %s, these credentials in %s; the repository policy there must allow %s", r.reg.Account, id.Account, RoleARN(id.ARN)))
	}
	return c
}

func netCheckID(role string) string {
	switch role {
	case roleAPI:
		return CheckNetECRAPI
	case roleRegistry:
		return CheckNetRegistry
	}
	return CheckNetLayers
}

// planEndpoints works out which hosts a pull talks to. The ECR API endpoint
// is the SDK's own choice, so overrides such as AWS_ENDPOINT_URL_ECR apply.
func (r *run) planEndpoints(ctx context.Context) {
	regURL := "https://" + r.reg.Host
	if r.o.RegistryEndpoint != "" {
		regURL = r.o.RegistryEndpoint
	}
	if ep, err := endpointFromURL(roleRegistry, regURL); err == nil {
		r.eps[roleRegistry] = ep
	}
	if !r.reg.Public {
		if p, ok := ecrhost.PartitionForRegion(r.reg.Region); ok {
			r.eps[roleLayers] = endpoint{Role: roleLayers, Host: layerBucketHost(r.reg.Region, p.Suffix), Port: "443", TLS: true}
		}
	}
	if r.aws == nil {
		return
	}
	u, err := r.aws.APIEndpoint(ctx)
	if err != nil {
		return
	}
	if ep, err := endpointFromURL(roleAPI, u); err == nil {
		r.apiURL = u
		r.eps[roleAPI] = ep
	}
}

func (r *run) checkNetwork(role string) Check {
	id := netCheckID(role)
	ep, ok := r.eps[role]
	if !ok {
		switch role {
		case roleLayers:
			return skipped(id, "ECR Public serves layers from its own CDN; see the layer download check")
		case roleAPI:
			return skipped(id, "the SDK could not work out the ECR API endpoint (see AWS credentials)")
		}
		return skipped(id, "no registry endpoint")
	}
	p, ok := r.probes[role]
	if !ok {
		return skipped(id, "the doctor's --timeout ran out before this check")
	}
	return r.netCheck(id, ep, p)
}

func (r *run) setProbe(role string, p probeResult) {
	r.probeMu.Lock()
	defer r.probeMu.Unlock()
	r.probes[role] = p
}

// netCheck turns a probe into a check. Whether the ECR endpoints are VPC
// endpoints is decided from the addresses the other probes found.
func (r *run) netCheck(id string, ep endpoint, p probeResult) Check {
	var c Check
	if p.ok() {
		c = passed(id, probeSummary(ep, p))
	} else {
		c = failed(id, probeSummary(ep, p), probeRemedy(ep, p, r.reg.Region, r.vpce()))
		c.fact("stage", p.Stage)
		c.fact("failure", p.Kind)
	}
	c.fact("host", ep.Host)
	c.fact("port", ep.Port)
	c.fact("addresses", joinIPs(p.Addrs))
	if p.Private && ep.Role != roleLayers {
		c.Notes = append(c.Notes, fmt.Sprintf("private addresses: an interface VPC endpoint answers for %s; layers still come from S3, so the subnet's route table also needs the S3 gateway endpoint (com.amazonaws.%s.s3)", ep.Host, r.reg.Region))
	}
	if ep.Role == roleAPI {
		if v := r.endpointOverride(); v != "" {
			c.Notes = append(c.Notes, "endpoint set by "+v)
		}
	}
	if px := r.proxyFor(); px != "" {
		c.Notes = append(c.Notes, px+" is set: the doctor connects directly, while the SDK and the container runtime may use the proxy")
	}
	return c
}

// endpointOverride names the variable that sets the ECR API endpoint, if
// one does (the SDK also reads endpoint_url from the shared config).
func (r *run) endpointOverride() string {
	names := []string{"AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL"}
	if r.reg.Public {
		names[0] = "AWS_ENDPOINT_URL_ECR_PUBLIC"
	}
	for _, k := range names {
		if r.o.Getenv(k) != "" {
			return k
		}
	}
	return ""
}

func (r *run) proxyFor() string {
	for _, k := range []string{"HTTPS_PROXY", "https_proxy"} {
		if r.o.Getenv(k) != "" {
			return k
		}
	}
	return ""
}

// vpce reports whether an ECR endpoint resolved to a private address.
func (r *run) vpce() bool {
	r.probeMu.Lock()
	defer r.probeMu.Unlock()
	return r.probes[roleAPI].Private || r.probes[roleRegistry].Private
}

func (r *run) checkAuthToken(ctx context.Context) Check {
	action := "ecr:GetAuthorizationToken"
	if r.reg.Public {
		action = "ecr-public:GetAuthorizationToken"
	}
	if !r.credsOK {
		c := skipped(CheckAuthToken, "no AWS credentials")
		return c
	}
	if p, ok := r.probes[roleAPI]; ok && !p.ok() && r.proxyFor() == "" {
		return skipped(CheckAuthToken, "the ECR API endpoint is unreachable (see "+title(CheckNetECRAPI)+")")
	}
	cctx, cancel := context.WithTimeout(ctx, 2*r.o.CheckTimeout)
	defer cancel()
	t, err := r.aws.AuthToken(cctx)
	if err != nil {
		who := ""
		if r.identOK {
			who = r.ident.ARN
		}
		c := r.tokenFailure(err, action, who)
		c.Advisory = r.reg.Public
		if r.reg.Public {
			c.Notes = append(c.Notes, "ECR Public also serves anonymous pulls (at a lower rate limit), so a pull can work without a token")
		}
		return c
	}
	r.tok, r.tokOK = t, true
	r.secrets.add(t.Password)
	s := "token for user " + t.Username
	if !t.ExpiresAt.IsZero() {
		s += fmt.Sprintf(", valid until %s (%s from now)", t.ExpiresAt.UTC().Format(time.RFC3339), time.Until(t.ExpiresAt).Round(time.Minute))
	}
	c := passed(CheckAuthToken, s)
	c.fact("username", t.Username)
	if !t.ExpiresAt.IsZero() {
		c.fact("expiresAt", t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	c.fact("endpoint", r.apiURL)
	return c
}

// tokenFailure explains a failed GetAuthorizationToken; caller is who
// called, when AWS's message does not say.
func (r *run) tokenFailure(err error, action, caller string) Check {
	code, msg, _ := apiError(err)
	if !isAccessDenied(code) {
		return failed(CheckAuthToken, action+" failed: "+oneLine(err.Error()), awsErrorRemedy(err, action))
	}
	d, _ := ParseDenial(msg)
	if d.Action == "" {
		d.Action = action
	}
	who := d.Principal
	if who == "" {
		who = caller
	}
	role := RoleARN(who)
	s := "AccessDenied: missing permission " + d.Action
	if who != "" {
		s += " for " + who
	}
	if d.Why != "" {
		s += " (" + d.Why + ")"
	}
	c := failed(CheckAuthToken, s, denialRemedy(d, role, r.reg.Public))
	c.fact("code", code)
	c.fact("missingAction", d.Action)
	c.fact("principal", who)
	return c
}

// denialRemedy says how to grant a denied action to role (a role or user
// ARN, or "").
func denialRemedy(d Denial, role string, public bool) string {
	target := "the node's IAM role"
	if role != "" {
		target = role
	}
	if strings.Contains(d.Why, "explicit deny") {
		return "an explicit deny (" + d.Why + ") overrides every allow: change that policy for " + target + "; service control policies live in AWS Organizations"
	}
	if public {
		return "attach the managed policy " + PolicyPublicReadOnly + " to " + target + " (it grants ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken)"
	}
	return "attach the managed policy " + PolicyPrivateReadOnly + " to " + target + " (or add " + d.Action + " to one of its policies)"
}

// awsErrorRemedy explains the AWS errors that are not AccessDenied.
func awsErrorRemedy(err error, action string) string {
	code, _, ok := apiError(err)
	switch {
	case !ok && isTimeout(err):
		return "AWS did not answer in time: see the network checks for the endpoint"
	case !ok:
		return "see the network checks; if they pass, retry with a longer --timeout"
	}
	switch code {
	case "UnrecognizedClientException", "InvalidClientTokenId":
		return "AWS does not know this access key: the credentials are wrong, deleted or from another partition; fix the source the credentials check names"
	case "InvalidSignatureException", "SignatureDoesNotMatch":
		return "the signature was refused: a wrong secret key, or the node's clock is off (check 'chronyc tracking')"
	case "ExpiredTokenException", "ExpiredToken", "RequestExpired":
		return "the credentials have expired: refresh them at their source, and check the node's clock"
	case "ThrottlingException", "Throttling", "TooManyRequestsException":
		return "AWS throttled the call: retry later; many nodes restarting at once cause this"
	case "AccessDeniedException", "AccessDenied":
		return "grant " + action + " to the caller"
	}
	return "see the AWS error code " + code + " for " + action
}

func (r *run) checkRegistryAuth(ctx context.Context) Check {
	ep := r.eps[roleRegistry]
	if p, ok := r.probes[roleRegistry]; ok && !p.ok() {
		return skipped(CheckRegistry, "the registry is unreachable (see "+title(CheckNetRegistry)+")")
	}
	if !r.tokOK && !r.reg.Public {
		return skipped(CheckRegistry, "no authorization token")
	}
	r.rc = &registryClient{r: r, base: ep.Base, hc: r.httpClient()}
	if r.tokOK {
		r.rc.user, r.rc.pass = r.tok.Username, r.tok.Password
	}
	s, err := r.rc.login(ctx, r.ref.Path)
	if err != nil {
		var se *statusError
		if errors.As(err, &se) && se.res.Status == http.StatusUnauthorized {
			return failed(CheckRegistry, "the registry refused the token: "+oneLine(err.Error()),
				fmt.Sprintf("ECR tokens are issued per region and partition: this one came from %s; make sure the provider's env sets no AWS_REGION that overrides the image's region, and that the token has not expired", r.apiURL))
		}
		return failed(CheckRegistry, oneLine(err.Error()), "see the network check for the registry; if it passes, the endpoint may not be an ECR registry (check --registry-endpoint)")
	}
	r.loggedIn = true
	c := passed(CheckRegistry, s)
	c.fact("challenge", r.rc.scheme)
	c.fact("endpoint", r.rc.base.String())
	return c
}

func (r *run) checkManifest(ctx context.Context) Check {
	if !r.loggedIn {
		return skipped(CheckManifest, "not logged in to the registry")
	}
	m, res, err := r.rc.getManifest(ctx, r.ref.Path, r.ref.Identifier())
	if err != nil {
		return failed(CheckManifest, "fetching the manifest failed: "+oneLine(err.Error()), "see the network check for the registry")
	}
	path := "/v2/" + r.ref.Path + "/manifests/" + r.ref.Identifier()
	switch res.Status {
	case http.StatusOK:
	case http.StatusForbidden, http.StatusUnauthorized:
		return r.manifestDenied(path, res)
	case http.StatusNotFound:
		return r.manifestMissing(path, res)
	case http.StatusTooManyRequests:
		return failed(CheckManifest, "GET "+path+" was throttled (429)", "retry later; many pulls at once hit ECR's per-account rate limits")
	default:
		return failed(CheckManifest, (&statusError{what: "GET " + path, res: res}).Error(), "a 5xx from the registry is on AWS's side: retry, and check the AWS Health Dashboard")
	}
	digest := res.Header.Get("Docker-Content-Digest")
	s := fmt.Sprintf("%s %s: %s", refKind(r.ref), r.ref.Identifier(), shortMediaType(m.MediaType))
	if digest != "" && digest != r.ref.Identifier() {
		s += " " + digest
	}
	if m.isIndex() {
		pick := m.platformManifest()
		s += fmt.Sprintf(", %d platforms", len(m.Manifests))
		sub, res2, err := r.rc.getManifest(ctx, r.ref.Path, pick)
		if err != nil || res2.Status != http.StatusOK {
			return failed(CheckManifest, s+"; but the platform manifest "+pick+" could not be fetched", "the index names a manifest the repository does not have: push the image again")
		}
		m = sub
	}
	if len(m.Layers) > 0 {
		s += fmt.Sprintf(", %d layer(s)", len(m.Layers))
		r.blob = m.Layers[0].Digest
	}
	if m.Config.Digest != "" {
		// The config blob is small and lives in the same bucket as layers.
		r.blob = m.Config.Digest
	}
	c := passed(CheckManifest, s)
	c.fact("digest", digest)
	c.fact("mediaType", m.MediaType)
	return c
}

func (r *run) manifestDenied(path string, res httpResult) Check {
	code, msg := registryError(res.Body)
	d, _ := ParseDenial(msg)
	if r.mapped != nil && r.mapped.Prefix != "" && slices.Contains(CacheActions, d.Action) {
		return r.cacheMiss(fmt.Sprintf("GET %s answered %d %s: %s", path, res.Status, code, msg), d.Action)
	}
	if d.Action == "" {
		d.Action = "ecr:BatchGetImage"
	}
	s := fmt.Sprintf("GET %s answered %d", path, res.Status)
	if code != "" {
		s += " " + code
	}
	if msg != "" {
		s += ": " + msg
	}
	if r.reg.Public {
		return failed(CheckManifest, s, "the repository is not public or does not allow this pull")
	}
	repo := fmt.Sprintf("repository %s in account %s (%s)", r.ref.Path, r.reg.Account, r.reg.Region)
	who := d.Principal
	if who == "" && r.identOK {
		who = r.ident.ARN
	}
	role := RoleARN(who)
	cross := r.identOK && r.ident.Account != r.reg.Account
	var c Check
	switch {
	case cross:
		c = failed(CheckManifest, s+" (cross-account: the caller is in account "+r.ident.Account+")",
			fmt.Sprintf("add the statement below to the repository policy of %s, in account %s: aws ecr set-repository-policy --registry-id %s --region %s --repository-name %s --policy-text file://policy.json (this replaces the whole policy: merge it with 'aws ecr get-repository-policy' first). The caller also needs %s in its own account.",
				repo, r.reg.Account, r.reg.Account, r.reg.Region, r.ref.Path, PolicyPrivateReadOnly))
		c.Policy = CrossAccountPolicy(role)
		c.Notes = append(c.Notes, "the policy names the role ARN, not the instance profile or the session; if the role was created with a path, add it to the ARN")
		c.fact("crossAccount", "true")
	case strings.Contains(d.Why, "explicit deny"):
		c = failed(CheckManifest, s, "an explicit deny ("+d.Why+") overrides every allow: change that policy (for a repository policy: aws ecr get-repository-policy --registry-id "+r.reg.Account+" --region "+r.reg.Region+" --repository-name "+r.ref.Path+")")
	default:
		target := "the node's role"
		if role != "" {
			target = role
		}
		c = failed(CheckManifest, s,
			fmt.Sprintf("same account: %s needs %s (attach %s), and the repository policy of %s must not deny it: aws ecr get-repository-policy --registry-id %s --region %s --repository-name %s",
				target, strings.Join(PullActions, ", "), PolicyPrivateReadOnly, repo, r.reg.Account, r.reg.Region, r.ref.Path))
	}
	c.fact("status", fmt.Sprint(res.Status))
	c.fact("missingAction", d.Action)
	c.fact("principal", role)
	return c
}

func (r *run) manifestMissing(path string, res httpResult) Check {
	code, msg := registryError(res.Body)
	where := fmt.Sprintf("--registry-id %s --region %s", r.reg.Account, r.reg.Region)
	if r.reg.Public {
		where = "--region us-east-1"
	}
	var c Check
	switch {
	case code == "NAME_UNKNOWN" && r.mapped != nil && r.mapped.Prefix != "":
		c = r.cacheMiss(fmt.Sprintf("repository %s does not exist in the pull-through cache yet (%s: %s)", r.ref.Path, code, msg), "")
	case code == "NAME_UNKNOWN":
		c = failed(CheckManifest, fmt.Sprintf("repository %s does not exist (%s: %s)", r.ref.Path, code, msg),
			fmt.Sprintf("check the repository name, account and region in the image name: aws ecr describe-repositories %s; an image pushed to another region must be replicated", where))
	default:
		what := fmt.Sprintf("%s %s not found in repository %s", refKind(r.ref), r.ref.Identifier(), r.ref.Path)
		if code != "" {
			what += " (" + code + ": " + msg + ")"
		}
		c = failed(CheckManifest, what,
			fmt.Sprintf("list what exists: aws ecr list-images %s --repository-name %s; a lifecycle policy may have expired the image, or the tag was never pushed", where, r.ref.Path))
	}
	c.fact("status", "404")
	c.fact("code", code)
	return c
}

func (r *run) checkLayerDownload(ctx context.Context) Check {
	if r.blob == "" {
		return skipped(CheckLayerDownload, "no manifest, so no layer to try")
	}
	path := "/v2/" + r.ref.Path + "/blobs/" + r.blob
	res, err := r.rc.do(ctx, http.MethodGet, r.rc.url(path), http.Header{"Range": {"bytes=0-0"}}, true)
	if err != nil {
		return failed(CheckLayerDownload, "GET "+path+" failed: "+oneLine(err.Error()), "see the network check for the registry")
	}
	switch res.Status {
	case http.StatusOK, http.StatusPartialContent:
		return passed(CheckLayerDownload, "the registry serves blob "+r.blob+" itself")
	case http.StatusTemporaryRedirect, http.StatusFound, http.StatusSeeOther, http.StatusMovedPermanently, http.StatusPermanentRedirect:
	default:
		return failed(CheckLayerDownload, (&statusError{what: "GET " + path, res: res}).Error(), "the manifest names a blob the registry cannot serve: push the image again")
	}
	loc, err := url.Parse(res.Header.Get("Location"))
	if err != nil || loc.Host == "" {
		return failed(CheckLayerDownload, "the registry redirected the blob download without a usable Location", "retry; this is on the registry's side")
	}
	// A presigned URL is a credential: only its host is ever shown.
	r.secrets.add(loc.RawQuery)
	r.secrets.add(loc.String())
	ep, _ := endpointFromURL(roleLayers, (&url.URL{Scheme: loc.Scheme, Host: loc.Host}).String())
	p, probed := r.probes[roleLayers]
	if !probed || r.eps[roleLayers].String() != ep.String() || p.ok() {
		p = r.probe(ctx, ep)
	}
	if !p.ok() {
		c := failed(CheckLayerDownload, "layers redirect to "+ep.Host+": "+probeSummary(ep, p), probeRemedy(ep, p, r.reg.Region, r.vpce()))
		c.fact("host", ep.Host)
		c.fact("failure", p.Kind)
		return c
	}
	s3 := &registryClient{r: r, base: loc, hc: r.rc.hc}
	got, err := s3.do(ctx, http.MethodGet, loc.String(), http.Header{"Range": {"bytes=0-0"}}, false)
	if err != nil {
		return failed(CheckLayerDownload, "layers redirect to "+ep.Host+", and the download failed: "+oneLine(r.secrets.redact(err.Error())), "retry; if it keeps failing, see the S3 network check")
	}
	switch got.Status {
	case http.StatusOK, http.StatusPartialContent:
		c := passed(CheckLayerDownload, fmt.Sprintf("blob %s redirects to %s, which answered %d", r.blob, ep.Host, got.Status))
		c.fact("host", ep.Host)
		return c
	case http.StatusForbidden:
		rem := "S3 refused the presigned URL: check the node's clock ('chronyc tracking')"
		if r.vpce() {
			rem = fmt.Sprintf("S3 refused the presigned URL: the S3 gateway endpoint's policy must allow s3:GetObject on arn:aws:s3:::prod-%s-starport-layer-bucket/*; also check the node's clock", r.reg.Region)
		}
		c := failed(CheckLayerDownload, fmt.Sprintf("blob %s redirects to %s, which answered 403", r.blob, ep.Host), rem)
		c.fact("host", ep.Host)
		return c
	}
	c := failed(CheckLayerDownload, fmt.Sprintf("blob %s redirects to %s, which answered %d", r.blob, ep.Host, got.Status), "retry; a 5xx from S3 is on AWS's side")
	c.fact("host", ep.Host)
	return c
}

// oneLine keeps an error on the check's line.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 400 {
		s = s[:400] + "..."
	}
	return s
}
