package doctor

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/kubecred/ecr-credential-provider/internal/arn"
)

// webIdentityAction is what a role's trust policy must allow for per-pod roles.
const webIdentityAction = "sts:AssumeRoleWithWebIdentity"

// oidcProvider is the IAM OIDC provider of a cluster's service account
// issuer, in the account of the role to assume.
type oidcProvider struct {
	// Key is the issuer without https://: the prefix of its condition keys.
	Key string
	ARN string
}

func newOIDCProvider(issuer, roleARN string) oidcProvider {
	key := strings.TrimSuffix(strings.TrimPrefix(issuer, "https://"), "/")
	partition := "aws"
	if a, ok := arn.Parse(roleARN); ok {
		partition = a.Partition
	}
	return oidcProvider{Key: key, ARN: "arn:" + partition + ":iam::" + arn.Account(roleARN) + ":oidc-provider/" + key}
}

// TrustStatement is the trust policy statement that lets tokens of one
// service account (sub) with one audience assume a role.
func (p oidcProvider) TrustStatement(sub, aud string) string {
	st := struct {
		Effect    string
		Principal struct{ Federated string }
		Action    string
		Condition map[string]map[string]string
	}{Effect: "Allow", Action: webIdentityAction,
		Condition: map[string]map[string]string{"StringEquals": {p.Key + ":sub": sub, p.Key + ":aud": aud}}}
	st.Principal.Federated = p.ARN
	b, _ := json.MarshalIndent(st, "", "  ")
	return string(b)
}

// stringList is a policy value that is one string or a list of them.
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*l = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings")
	}
	*l = many
	return nil
}

type policyStatement struct {
	Sid       string                           `json:"Sid"`
	Effect    string                           `json:"Effect"`
	Principal json.RawMessage                  `json:"Principal"`
	Action    stringList                       `json:"Action"`
	Condition map[string]map[string]stringList `json:"Condition"`
}

// trustVerdict says whether a trust policy lets a token assume the role,
// and if not, which conditions refuse it.
type trustVerdict struct {
	Allowed bool
	// Failing are the refusing conditions of the statement closest to
	// allowing, or why no statement applies.
	Failing []string
	// Unchecked are conditions on keys the doctor cannot evaluate.
	Unchecked []string
}

// evaluateTrust checks the Allow statements of a trust policy document
// (as 'aws iam get-role --query Role.AssumeRolePolicyDocument' prints it)
// against a token's sub and aud, the way IAM matches the string operators.
func evaluateTrust(doc []byte, p oidcProvider, sub string, aud []string) (trustVerdict, error) {
	var pol struct {
		Statement json.RawMessage `json:"Statement"`
	}
	if err := json.Unmarshal(doc, &pol); err != nil {
		return trustVerdict{}, fmt.Errorf("the trust policy is not a JSON policy document: %v", err)
	}
	var sts []policyStatement
	if err := json.Unmarshal(pol.Statement, &sts); err != nil {
		var one policyStatement
		if err2 := json.Unmarshal(pol.Statement, &one); err2 != nil {
			return trustVerdict{}, fmt.Errorf("the trust policy's Statement is neither a statement nor a list of them: %v", err)
		}
		sts = []policyStatement{one}
	}
	var best *trustVerdict
	var trusted []string
	for _, st := range sts {
		if st.Effect != "Allow" || !actionCovers(st.Action, webIdentityAction) {
			continue
		}
		feds := federated(st.Principal)
		trusted = append(trusted, feds...)
		if !slices.Contains(feds, p.ARN) && !slices.Contains(feds, "*") {
			continue
		}
		v := trustVerdict{}
		for op, conds := range st.Condition {
			for key, want := range conds {
				var got []string
				switch key {
				case p.Key + ":sub":
					got = []string{sub}
				case p.Key + ":aud":
					got = aud
				default:
					v.Unchecked = append(v.Unchecked, op+" "+key)
					continue
				}
				ok, known := matchCondition(op, want, got)
				if !known {
					v.Unchecked = append(v.Unchecked, op+" "+key)
					continue
				}
				if !ok {
					claim := key[strings.LastIndex(key, ":")+1:]
					v.Failing = append(v.Failing, fmt.Sprintf("%s %q is %s, but the token's %s is %s", op, key, quoteList(want), claim, quoteList(got)))
				}
			}
		}
		slices.Sort(v.Failing)
		slices.Sort(v.Unchecked)
		v.Allowed = len(v.Failing) == 0
		if best == nil || len(v.Failing) < len(best.Failing) {
			best = &v
		}
	}
	if best == nil {
		why := "no Allow statement for " + webIdentityAction + " trusts the OIDC provider " + p.ARN
		if len(trusted) > 0 {
			why += " (it trusts " + strings.Join(trusted, ", ") + ")"
		}
		return trustVerdict{Failing: []string{why}}, nil
	}
	return *best, nil
}

func actionCovers(actions []string, action string) bool {
	for _, a := range actions {
		if ok, _ := path.Match(strings.ToLower(a), strings.ToLower(action)); ok {
			return true
		}
	}
	return false
}

func federated(raw json.RawMessage) []string {
	var star string
	if json.Unmarshal(raw, &star) == nil {
		return []string{star}
	}
	var p struct {
		Federated stringList `json:"Federated"`
	}
	json.Unmarshal(raw, &p)
	return p.Federated
}

// matchCondition applies an IAM string condition operator; known is false
// for operators the doctor does not evaluate.
func matchCondition(op string, want, got []string) (ok, known bool) {
	base, negate := strings.TrimPrefix(strings.TrimPrefix(op, "ForAnyValue:"), "ForAllValues:"), false
	if n, found := strings.CutPrefix(base, "StringNot"); found {
		base, negate = "String"+n, true
	}
	var eq func(w, g string) bool
	switch base {
	case "StringEquals":
		eq = func(w, g string) bool { return w == g }
	case "StringEqualsIgnoreCase":
		eq = strings.EqualFold
	case "StringLike":
		// IAM's * and ? match any run and any one character, '/' included.
		eq = func(w, g string) bool { return likeMatch(w, g) }
	default:
		return false, false
	}
	hit := false
	for _, g := range got {
		for _, w := range want {
			hit = hit || eq(w, g)
		}
	}
	return hit != negate, true
}

// likeMatch is IAM's StringLike: '*' matches any run of characters and '?'
// any single one. It backtracks only to the last '*', so a policy value
// with many stars costs len(pattern)*len(s) at most.
func likeMatch(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	if len(q) == 1 {
		return q[0]
	}
	return "[" + strings.Join(q, ", ") + "]"
}
