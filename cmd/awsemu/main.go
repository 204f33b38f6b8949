//go:build unix

// Command awsemu runs the loopback AWS emulator (internal/awsemu) by hand:
//
//	eval "$(go run ./cmd/awsemu -background)"   # serves on, detached
//	aws sts get-caller-identity                  # or any AWS SDK
//	kill "$AWSEMU_PID"                           # stops it
//
// It prints the environment that points aws-sdk-go-v2 at it as shell export
// lines once listening. With -background it then exits, leaving a detached
// copy of itself serving (its pid in AWSEMU_PID); without, it serves in the
// foreground until SIGINT or SIGTERM. The control API is documented in
// internal/awsemu.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
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
	fs.BoolVar(&opts.RotatePasswords, "rotate-passwords", false, "give every token a password of its own (the Nth: the password plus -N)")
	fs.DurationVar(&opts.TokenTTL, "token-ttl", 12*time.Hour, "ECR authorization token lifetime")
	fs.DurationVar(&opts.CredentialTTL, "credential-ttl", time.Hour, "IMDS and STS credential lifetime")
	fs.Int64Var(&opts.Seed, "seed", 1, "seed for fault decisions and generated keys")
	fs.Var(keys, "static-key", "accept long-term key `AKID:SECRET:ARN` (repeatable)")
	background := fs.Bool("background", false, "print the exports and AWSEMU_PID, and leave a detached emulator serving: eval \"$(awsemu -background)\"; stop it with kill \"$AWSEMU_PID\"")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: awsemu [flags]

Runs the project's AWS emulator (IMDSv2, ECR, ECR Public, STS) on loopback
and prints the shell exports that point an AWS SDK at it.

Flags:
`)
		fs.PrintDefaults()
		fmt.Fprint(fs.Output(), `
Example:
  eval "$(go run ./cmd/awsemu -background)"; aws sts get-caller-identity; kill "$AWSEMU_PID"
`)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "awsemu: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *background {
		return detach(args)
	}
	opts.StaticKeys = keys
	out, errOut := os.Stdout, io.Writer(os.Stderr)
	if os.Getenv(readyFDEnv) != "" {
		// The detached copy: the exports (or the error) go to the parent
		// through fd 3, and closing it tells the parent we are listening.
		out = os.NewFile(3, "ready")
		errOut = out
		os.Unsetenv(readyFDEnv)
	}
	s, err := awsemu.StartOn(*addr, opts)
	if err != nil {
		fmt.Fprintln(errOut, err)
		return 1
	}
	defer s.Close()
	for _, kv := range s.Env() {
		k, v, _ := strings.Cut(kv, "=")
		fmt.Fprintf(out, "export %s='%s'\n", k, v)
	}
	if out != os.Stdout {
		out.Close()
	}
	fmt.Fprintf(os.Stderr, "awsemu: serving on %s (control API under %s/_emu/)\n", s.URL(), s.URL())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return 0
}

// readyFDEnv tells the detached copy to report on fd 3 instead of stdout.
const readyFDEnv = "AWSEMU_READY_FD"

// detach starts this program again without -background, in its own session
// and with no tie to our stdout (so "$(...)" returns), waits until it
// listens, and prints its exports and pid.
func detach(args []string) int {
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "awsemu:", err)
		return 1
	}
	var rest []string
	for _, a := range args {
		if a != "-background" && a != "--background" && a != "-background=true" && a != "--background=true" {
			rest = append(rest, a)
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		fmt.Fprintln(os.Stderr, "awsemu:", err)
		return 1
	}
	cmd := exec.Command(self, rest...)
	cmd.Env = append(os.Environ(), readyFDEnv+"=3")
	cmd.ExtraFiles = []*os.File{w}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "awsemu:", err)
		return 1
	}
	w.Close()
	exports, err := io.ReadAll(r)
	r.Close()
	if err != nil || !bytes.HasPrefix(exports, []byte("export ")) {
		cmd.Process.Kill()
		cmd.Wait()
		fmt.Fprintf(os.Stderr, "awsemu: the detached emulator did not start: %s\n", bytes.TrimSpace(exports))
		return 1
	}
	os.Stdout.Write(exports)
	fmt.Printf("export AWSEMU_PID='%d'\n", cmd.Process.Pid)
	fmt.Fprintf(os.Stderr, "awsemu: serving in the background as pid %d; stop it with: kill %d\n", cmd.Process.Pid, cmd.Process.Pid)
	cmd.Process.Release()
	return 0
}
