// Package arn reads Amazon Resource Names (arn:PARTITION:SERVICE:REGION:
// ACCOUNT:RESOURCE): the one parser the plugin, the doctor and the AWS
// emulator share. It is written out rather than with regexps and imports
// only strings, because the plugin's cache-hit path checks role ARNs (see
// package fastpath).
package arn

import "strings"

// ARN is a parsed Amazon Resource Name.
type ARN struct {
	Partition, Service, Region, Account, Resource string
}

// Parse splits s into its fields; ok is false unless s starts with "arn:"
// and has all six.
func Parse(s string) (a ARN, ok bool) {
	parts := strings.SplitN(s, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" {
		return ARN{}, false
	}
	return ARN{Partition: parts[1], Service: parts[2], Region: parts[3], Account: parts[4], Resource: parts[5]}, true
}

// String gives the ARN back in its text form.
func (a ARN) String() string {
	return "arn:" + a.Partition + ":" + a.Service + ":" + a.Region + ":" + a.Account + ":" + a.Resource
}

// Account returns the account field of s, or "" when s is no ARN.
func Account(s string) string {
	a, _ := Parse(s)
	return a.Account
}

// IsRole reports whether s is an IAM role ARN, the only thing
// AssumeRoleWithWebIdentity takes: arn:aws[a-z-]*:iam::<12 digits>:role/
// then 1 to 512 of [A-Za-z0-9_+=,.@/-].
func IsRole(s string) bool {
	rest, ok := strings.CutPrefix(s, "arn:aws")
	if !ok {
		return false
	}
	partition, rest, ok := strings.Cut(rest, ":")
	if !ok || strings.Trim(partition, "abcdefghijklmnopqrstuvwxyz-") != "" {
		return false
	}
	rest, ok = strings.CutPrefix(rest, "iam::")
	if !ok || len(rest) < 12 || strings.Trim(rest[:12], "0123456789") != "" {
		return false
	}
	name, ok := strings.CutPrefix(rest[12:], ":role/")
	if !ok || len(name) < 1 || len(name) > 512 {
		return false
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.ContainsRune("_+=,.@/-", c)) {
			return false
		}
	}
	return true
}

// RoleFromSession turns an assumed-role session ARN
// (arn:aws:sts::A:assumed-role/R/S) into its role's ARN
// (arn:aws:iam::A:role/R); ok is false for anything else. A session ARN
// drops the role's path: a role created with one needs it put back.
func RoleFromSession(s string) (string, bool) {
	a, ok := Parse(s)
	if !ok || a.Service != "sts" {
		return "", false
	}
	res := strings.Split(a.Resource, "/")
	if len(res) < 2 || res[0] != "assumed-role" {
		return "", false
	}
	return ARN{Partition: a.Partition, Service: "iam", Account: a.Account, Resource: "role/" + res[1]}.String(), true
}

// RoleName is the last element of a role's path (role/PATH/NAME), or ""
// when a is no role ARN.
func (a ARN) RoleName() string {
	if a.Service != "iam" || !strings.HasPrefix(a.Resource, "role/") {
		return ""
	}
	return a.Resource[strings.LastIndex(a.Resource, "/")+1:]
}
