package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
)

type stormOptions struct {
	nodes, accounts, burst int
	rate                   float64
	upstream               string
}

// stormFigures are what the issue asks of a restart storm, per binary.
type stormFigures struct {
	Binary          string  `json:"binary"`
	Nodes           int     `json:"nodes"`
	Accounts        int     `json:"accounts"`
	Calls           int     `json:"calls"`
	GetAuthOK       int     `json:"getAuthorizationTokenOk"`
	GetAuthPerNode  float64 `json:"getAuthorizationTokenPerNode"`
	AttemptsPerNode float64 `json:"attemptsPerNode"`
	Throttled       int     `json:"throttled"`
	InDeadlinePct   float64 `json:"answeredInsideDeadlinePct"`
}

// runStorm starts every node at once. A node pulls its images one after
// another, as a kubelet with serializeImagePulls does, so round i is every
// node pulling from account i at the same moment. Each node has its own
// cache dir; all share one emulator, as the nodes of a cluster share their
// account's GetAuthorizationToken quota in a region.
func runStorm(b *bench, o options) (*result, error) {
	ours, r, err := b.storm(b.bin, o.storm)
	ours.Binary = "ours"
	if err != nil {
		return nil, err
	}
	figures := []stormFigures{ours}
	if o.storm.upstream != "" {
		up, _, err := b.storm(o.storm.upstream, o.storm)
		if err != nil {
			return nil, fmt.Errorf("upstream: %w", err)
		}
		figures = append(figures, up)
	} else {
		r.note("upstream not run: pass -upstream PATH to run its binary side by side")
	}
	for _, f := range figures {
		r.note("%s: %d nodes x %d accounts = %d calls; successful GetAuthorizationToken %d (%.2f per node), attempts %.2f per node, %d throttled; %.1f%% answered with a token inside the %v deadline",
			f.Binary, f.Nodes, f.Accounts, f.Calls, f.GetAuthOK, f.GetAuthPerNode, f.AttemptsPerNode, f.Throttled, f.InDeadlinePct, pluginTimeout)
	}
	r.check("1 successful GetAuthorizationToken per node", fmt.Sprintf("%.2f", ours.GetAuthPerNode), ours.GetAuthPerNode == 1)
	r.check("100% answered inside the deadline", pct(ours.InDeadlinePct), ours.InDeadlinePct == 100)
	return r, nil
}

func (b *bench) storm(bin string, o stormOptions) (stormFigures, *result, error) {
	n, err := b.newNode(nil)
	if err != nil {
		return stormFigures{}, nil, err
	}
	defer n.emu.Close()
	n.emu.SetRateLimit(awsemu.TargetECR, awsemu.RateLimit{PerSecond: o.rate, Burst: o.burst})
	envs := make([][]string, o.nodes)
	for i := range envs {
		dir := filepath.Join(n.home, fmt.Sprintf("node-%d", i))
		envs[i] = append(slices.Clip(n.env), cacheEnv+"="+dir)
	}
	before := n.emu.Stats()
	var samples []sample
	inDeadline := 0
	for a := range o.accounts {
		host := fmt.Sprintf("%012d.dkr.ecr.us-east-1.amazonaws.com", 100000000000+a*111111111)
		req := `{"kind":"CredentialProviderRequest","apiVersion":"` + protocol.V1 + `","image":"` + host + `/app"}`
		ss, err := b.spawnWith(bin, envs, slices.Repeat([]string{req}, len(envs)))
		if err != nil {
			return stormFigures{}, nil, err
		}
		for _, s := range ss {
			if hostPassword(s, host) != "" && s.wall <= pluginTimeout+grace {
				inDeadline++
			}
		}
		samples = append(samples, ss...)
	}
	after := n.emu.Stats()
	for _, env := range envs {
		os.RemoveAll(env[len(env)-1][len(cacheEnv)+1:])
	}
	op, op0 := after.Op(awsemu.TargetECR, "GetAuthorizationToken"), before.Op(awsemu.TargetECR, "GetAuthorizationToken")
	f := stormFigures{
		Binary: bin, Nodes: o.nodes, Accounts: o.accounts, Calls: len(samples),
		GetAuthOK: op.Status[200] - op0.Status[200], Throttled: op.Status[400] - op0.Status[400],
		AttemptsPerNode: float64(op.Requests-op0.Requests) / float64(o.nodes),
		InDeadlinePct:   100 * float64(inDeadline) / float64(len(samples)),
	}
	f.GetAuthPerNode = float64(f.GetAuthOK) / float64(o.nodes)
	r := summarize(samples, func(s sample) bool { return s.code == 0 && s.wall <= pluginTimeout+grace }, before, after)
	return f, r, nil
}
