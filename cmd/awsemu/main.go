// Command awsemu runs the loopback AWS emulator (internal/awsemu) by hand:
//
//	eval "$(awsemu -account 111122223333 -region eu-west-1 &)"
//
// It prints the environment that points aws-sdk-go-v2 at it as shell export
// lines once listening, then serves until SIGINT or SIGTERM. The control API
// is documented in internal/awsemu.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/awsemu"
)

func main() { os.Exit(run(os.Args[1:])) }

// staticKeys collects repeated -static-key AKID:SECRET:ARN flags.
type staticKeys map[string]awsemu.StaticKey

func (k staticKeys) String() string { return fmt.Sprintf("%d keys", len(k)) }

func (k staticKeys) Set(v string) error {
	parts := strings.SplitN(v, ":", 3)
	if len(parts) != 3 || parts[0] == "" || parts[1] == "" || !strings.HasPrefix(parts[2], "arn:") {
		return fmt.Errorf("want AKID:SECRET:ARN, e.g. AKIAEXAMPLE:secret:arn:aws:iam::123456789012:user/ci")
	}
	k[parts[0]] = awsemu.StaticKey{Secret: parts[1], ARN: parts[2]}
	return nil
}

func run(args []string) int {
	fs := flag.NewFlagSet("awsemu", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:0", "loopback `host:port` to listen on")
	var opts awsemu.Options
	keys := staticKeys{}
	fs.StringVar(&opts.Account, "account", "123456789012", "AWS account ID of the emulated node")
	fs.StringVar(&opts.Region, "region", "us-west-2", "region IMDS reports")
	fs.StringVar(&opts.RoleName, "role", "ecr-node-role", "instance profile role name")
	fs.StringVar(&opts.Password, "password", "", "registry password in every token (default: one per principal)")
	fs.DurationVar(&opts.TokenTTL, "token-ttl", 12*time.Hour, "ECR authorization token lifetime")
	fs.DurationVar(&opts.CredentialTTL, "credential-ttl", time.Hour, "IMDS and STS credential lifetime")
	fs.Int64Var(&opts.Seed, "seed", 1, "seed for fault decisions and generated keys")
	fs.Var(keys, "static-key", "accept long-term key `AKID:SECRET:ARN` (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "awsemu: unexpected arguments %q\n", fs.Args())
		return 2
	}
	opts.StaticKeys = keys
	s, err := awsemu.StartOn(*addr, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Printf("export %s='%s'\n", k, v)
	}
	fmt.Fprintf(os.Stderr, "awsemu: serving on %s (control API under %s/_emu/)\n", s.URL(), s.URL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return 0
}
