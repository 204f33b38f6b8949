package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/token"
)

// Environment variables that set plugin flags, for configs that prefer env.
const (
	EnvCacheDir = "ECR_CREDENTIAL_PROVIDER_CACHE_DIR"
	EnvTimeout  = "ECR_CREDENTIAL_PROVIDER_TIMEOUT"
	EnvLogLevel = "ECR_CREDENTIAL_PROVIDER_VERBOSITY"
	EnvLogFile  = "ECR_CREDENTIAL_PROVIDER_LOG_FILE"
)

// DefaultCacheDir is where root keeps tokens on a node.
const DefaultCacheDir = "/var/lib/ecr-credential-provider/cache"

func defaultCacheDir() string {
	if os.Geteuid() == 0 {
		return DefaultCacheDir
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ecr-credential-provider")
	}
	return ""
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// runPlugin is the kubelet's entry point. Stdout carries exactly one JSON
// response or nothing; everything else goes to stderr or the log file.
func runPlugin(ctx context.Context, env *Env, args []string) int {
	fs := flag.NewFlagSet("ecr-credential-provider", flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	verbosity := fs.Int("v", envInt(env, EnvLogLevel, 0), "log verbosity: 0 warnings and errors, 1 info, 2 debug (env "+EnvLogLevel+")")
	logFile := fs.String("log-file", env.getenv(EnvLogFile), "append logs to this file instead of stderr (env "+EnvLogFile+")")
	cacheDir := fs.String("cache-dir", envOr(env, EnvCacheDir, defaultCacheDir()), "directory of the shared token cache, created 0700 (env "+EnvCacheDir+")")
	noCache := fs.Bool("no-cache", false, "do not use the disk cache")
	timeout := fs.Duration("timeout", envDuration(env, EnvTimeout, 20*time.Second), "bound on the whole call, kept well under the kubelet's 60s (env "+EnvTimeout+")")
	refresh := fs.Duration("refresh-timeout", 5*time.Second, "bound on a refresh when a still-valid cached token can be served instead")
	var roleAnn listFlag
	fs.Var(&roleAnn, "role-annotation", "service account annotation key naming a per-pod role (repeatable; default "+plugin.DefaultRoleAnnotation+")")
	// The Kubernetes docs' example config passes "get-credentials"; accept it anywhere.
	var rest []string
	for _, a := range args {
		if a != "get-credentials" {
			rest = append(rest, a)
		}
	}
	if err := fs.Parse(rest); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(env.Stderr, "ecr-credential-provider: unexpected argument %q (run 'ecr-credential-provider help')\n", fs.Arg(0))
		return 2
	}

	var logOut io.Writer = env.Stderr
	toFile := *logFile != ""
	if toFile {
		f, err := os.OpenFile(*logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			fmt.Fprintf(env.Stderr, "ecr-credential-provider: opening --log-file: %v\n", err)
			return 1
		}
		defer f.Close()
		logOut = f
	}
	level := slog.LevelWarn
	switch {
	case *verbosity >= 2:
		level = slog.LevelDebug
	case *verbosity == 1:
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))

	if f, ok := env.Stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			fmt.Fprintln(env.Stderr, "ecr-credential-provider: reading a CredentialProviderRequest from stdin, as the kubelet sends it (end with Ctrl-D; 'ecr-credential-provider help' lists the other commands)")
		}
	}
	req, err := protocol.ReadRequest(env.Stdin)
	if err != nil {
		return fail(env, log, toFile, err)
	}
	cfg := plugin.Config{
		Timeout:         *timeout,
		RefreshTimeout:  *refresh,
		RoleAnnotations: roleAnn,
		Getenv:          env.getenv,
		Logger:          log,
		Fetcher:         token.New(token.Options{Logger: log}),
	}
	if !*noCache && *cacheDir != "" {
		dir, err := cache.Open(*cacheDir)
		if err != nil {
			log.Warn("running without the disk cache", "error", err)
		} else {
			cfg.Cache = dir
		}
	}
	resp, err := plugin.Run(ctx, cfg, req)
	if err != nil {
		return fail(env, log, toFile, err)
	}
	if err := resp.Encode(env.Stdout); err != nil {
		return fail(env, log, toFile, fmt.Errorf("writing the response: %w", err))
	}
	return 0
}

// fail reports err as one line on stderr, where the kubelet shows it, and
// in the log file too when there is one.
func fail(env *Env, log *slog.Logger, toFile bool, err error) int {
	fmt.Fprintf(env.Stderr, "ecr-credential-provider: %v\n", err)
	if toFile {
		log.Error("request failed", "error", err)
	}
	return 1
}

func envOr(env *Env, key, def string) string {
	if v := env.getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(env *Env, key string, def int) int {
	var n int
	if _, err := fmt.Sscan(env.getenv(key), &n); err == nil {
		return n
	}
	return def
}

func envDuration(env *Env, key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(env.getenv(key)); err == nil && d > 0 {
		return d
	}
	return def
}
