package doctor

import (
	"encoding/json"
	"errors"
	"strings"

	"github.com/aws/smithy-go"
	"github.com/kubecred/ecr-credential-provider/internal/arn"
	"github.com/kubecred/ecr-credential-provider/internal/lazyregexp"
)

// Managed policies that grant what a node needs to pull.
const (
	PolicyPrivateReadOnly = "AmazonEC2ContainerRegistryReadOnly"
	PolicyPublicReadOnly  = "AmazonElasticContainerRegistryPublicReadOnly"
)

// PullActions are what a repository policy must allow another account's
// principal for a pull.
var PullActions = []string{"ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"}

// Denial is what an AccessDenied message says about who was refused what.
type Denial struct {
	Principal string
	Action    string
	Resource  string
	// Why is the policy kind AWS blames ("no identity-based policy allows",
	// "an explicit deny in a service control policy", ...), when it says.
	Why string
}

// The patterns compile on first use: this package is linked into the
// plugin, and package-level regexps would cost every plugin call.
var (
	deniedRe = lazyregexp.New(`User: (\S+) is not authorized to perform: ([A-Za-z0-9-]+:[A-Za-z0-9*]+)(?: on resource: (\S+))?(?: (?:because|with) (.*?))?\.?$`)
	actionRe = lazyregexp.New(`not authorized to perform:? ([A-Za-z0-9-]+:[A-Za-z0-9*]+)`)
)

// ParseDenial reads an AWS AccessDenied message (ECR's JSON errors, STS's
// XML errors and the registry's DENIED errors all use the same sentence).
func ParseDenial(msg string) (Denial, bool) {
	msg = strings.TrimSpace(msg)
	if m := deniedRe.FindStringSubmatch(msg); m != nil {
		return Denial{Principal: m[1], Action: m[2], Resource: m[3], Why: m[4]}, true
	}
	if m := actionRe.FindStringSubmatch(msg); m != nil {
		return Denial{Action: m[1]}, true
	}
	return Denial{}, false
}

// apiError returns the AWS error code and message of an SDK error.
func apiError(err error) (code, msg string, ok bool) {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode(), api.ErrorMessage(), true
	}
	return "", "", false
}

func isAccessDenied(code string) bool {
	return code == "AccessDeniedException" || code == "AccessDenied"
}

// RoleARN turns a caller ARN into the ARN a resource policy must name: an
// assumed-role session arn:aws:sts::A:assumed-role/R/S becomes the role
// arn:aws:iam::A:role/R. Anything else (an IAM user, a role) is returned
// as is. A session ARN drops the role's path: a role created with one
// needs it put back.
func RoleARN(callerARN string) string {
	if role, ok := arn.RoleFromSession(callerARN); ok {
		return role
	}
	return callerARN
}

// CrossAccountPolicy is the repository policy that lets principal pull from
// a repository in another account.
func CrossAccountPolicy(principal string) string {
	// Structs, not maps, keep the keys in the order AWS documents them.
	type statement struct {
		Sid       string
		Effect    string
		Principal struct{ AWS string }
		Action    []string
	}
	st := statement{Sid: "AllowCrossAccountPull", Effect: "Allow", Action: PullActions}
	st.Principal.AWS = principal
	doc := struct {
		Version   string
		Statement []statement
	}{"2012-10-17", []statement{st}}
	b, _ := json.MarshalIndent(doc, "", "  ")
	return string(b)
}

// describeSource names a credential source (aws.Credentials.Source) in the
// terms an operator uses.
func describeSource(source string, getenv func(string) string) string {
	switch {
	case source == "EnvConfigCredentials":
		return "environment variables (AWS_ACCESS_KEY_ID)"
	case strings.HasPrefix(source, "SharedConfigCredentials"):
		p := getenv("AWS_PROFILE")
		if p == "" {
			p = "default"
		}
		file := strings.TrimSpace(strings.TrimPrefix(source, "SharedConfigCredentials:"))
		if file != "" {
			return "shared credentials file " + file + " (profile " + p + ")"
		}
		return "shared config (profile " + p + ")"
	case source == "WebIdentityCredentials":
		return "web identity token (IRSA: AWS_ROLE_ARN with AWS_WEB_IDENTITY_TOKEN_FILE)"
	case source == "CredentialsEndpointProvider":
		if strings.Contains(getenv("AWS_CONTAINER_CREDENTIALS_FULL_URI"), "169.254.170.23") ||
			strings.Contains(getenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"), "eks-pod-identity") {
			return "EKS Pod Identity (container credentials endpoint)"
		}
		return "container credentials endpoint (ECS task role or EKS Pod Identity)"
	case source == "EC2RoleProvider":
		return "EC2 instance profile, from the instance metadata service (IMDS)"
	case source == "AssumeRoleProvider":
		return "a role assumed from a profile's role_arn"
	case source == "SSOProvider":
		return "IAM Identity Center (SSO) profile"
	case source == "ProcessProvider":
		return "a profile's credential_process"
	case source == "":
		return "an unnamed provider"
	}
	return source
}

// maskKeyID keeps only what the AWS CLI shows of an access key ID.
func maskKeyID(id string) string {
	if len(id) <= 4 {
		return strings.Repeat("*", len(id))
	}
	return strings.Repeat("*", len(id)-4) + id[len(id)-4:]
}
