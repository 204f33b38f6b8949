package plugin

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
)

// Environment variables that set plugin flags, for configs that prefer env.
const (
	EnvCacheDir = "ECR_CREDENTIAL_PROVIDER_CACHE_DIR"
	EnvTimeout  = "ECR_CREDENTIAL_PROVIDER_TIMEOUT"
	EnvLogLevel = "ECR_CREDENTIAL_PROVIDER_VERBOSITY"
	EnvLogFile  = "ECR_CREDENTIAL_PROVIDER_LOG_FILE"
)

// KubeletKill is how long the kubelet lets a provider run before it kills
// it; --timeout must end the call before that.
const KubeletKill = 60 * time.Second

// DefaultCacheDir is where root keeps tokens on a node.
const DefaultCacheDir = "/var/lib/ecr-credential-provider/cache"

// Flags is the plugin's command line: the args of its entry in the kubelet's
// CredentialProviderConfig, over defaults from the provider's env.
type Flags struct {
	Verbosity       int
	LogFile         string
	CacheDir        string
	NoCache         bool
	Timeout         time.Duration
	RefreshTimeout  time.Duration
	RoleAnnotations []string
	// RegistryMap holds SOURCE=TARGET entries from --registry-map.
	RegistryMap []string
	// RegistryMapFile names a file of further entries.
	RegistryMapFile string
}

// ParseFlags parses the plugin's command line. Errors go to output; -h
// writes nothing and returns flag.ErrHelp. Any error means the command line is not a plugin call. The
// "get-credentials" argument from the Kubernetes docs' example config is
// accepted anywhere.
func ParseFlags(args []string, getenv func(string) string, output io.Writer) (Flags, error) {
	var f Flags
	fail := func(err error) (Flags, error) {
		fmt.Fprintf(output, "ecr-credential-provider: %v\n", err)
		return Flags{}, err
	}
	// A bad value in the env is an error even when a flag overrides it: it
	// is part of the provider's config, and wrong there.
	verbosity, err := envInt(getenv, EnvLogLevel, 0)
	if err != nil {
		return fail(err)
	}
	timeout, err := envDuration(getenv, EnvTimeout, 20*time.Second)
	if err != nil {
		return fail(err)
	}
	fs := flag.NewFlagSet("ecr-credential-provider", flag.ContinueOnError)
	// The flag package's own line would lack the name the kubelet's log
	// needs and say only "parse error" for a bad value: report it here.
	fs.SetOutput(io.Discard)
	// -h is the caller's to answer (flag.ErrHelp): the CLI prints help
	// with a description, not the flag package's bare list.
	fs.Usage = func() {}
	f.register(fs, getenv, verbosity, timeout)
	var rest []string
	for _, a := range args {
		if a != "get-credentials" {
			rest = append(rest, a)
		}
	}
	if err := fs.Parse(rest); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return Flags{}, err
		}
		return fail(explainFlagError(err))
	}
	if fs.NArg() > 0 {
		return fail(fmt.Errorf("unexpected argument %q (run 'ecr-credential-provider help')", fs.Arg(0)))
	}
	switch {
	case f.Verbosity < 0:
		return fail(fmt.Errorf("-v %d: want 0, 1 or 2", f.Verbosity))
	case f.Timeout <= 0 || f.Timeout >= KubeletKill:
		return fail(fmt.Errorf("--timeout %v: want more than 0 and less than 60s, when the kubelet kills the provider (default 20s)", f.Timeout))
	case f.RefreshTimeout <= 0:
		return fail(fmt.Errorf("--refresh-timeout %v: want more than 0", f.RefreshTimeout))
	}
	return f, nil
}

// explainFlagError says what a flag wants where the flag package says only
// "parse error", and where to read about the flags.
func explainFlagError(err error) error {
	msg := err.Error()
	if rest, ok := strings.CutSuffix(msg, ": parse error"); ok {
		switch {
		case strings.HasSuffix(rest, " -timeout"), strings.HasSuffix(rest, " -refresh-timeout"):
			msg = rest + ": want a duration such as 20s"
		case strings.HasSuffix(rest, " -v"):
			msg = rest + ": want 0, 1 or 2"
		}
	}
	return fmt.Errorf("%s (run 'ecr-credential-provider help')", msg)
}

// Register defines the plugin's flags on fs, with defaults from getenv:
// the one definition that parsing and the CLI's help both use. Help shows
// a bad env value's default; parsing refuses it.
func (f *Flags) Register(fs *flag.FlagSet, getenv func(string) string) {
	verbosity, err := envInt(getenv, EnvLogLevel, 0)
	if err != nil {
		verbosity = 0
	}
	timeout, err := envDuration(getenv, EnvTimeout, 20*time.Second)
	if err != nil {
		timeout = 20 * time.Second
	}
	f.register(fs, getenv, verbosity, timeout)
}

func (f *Flags) register(fs *flag.FlagSet, getenv func(string) string, verbosity int, timeout time.Duration) {
	fs.IntVar(&f.Verbosity, "v", verbosity, "log verbosity: 0 warnings and errors, 1 info, 2 debug (env "+EnvLogLevel+")")
	fs.StringVar(&f.LogFile, "log-file", getenv(EnvLogFile), "append logs to this file instead of stderr (env "+EnvLogFile+")")
	cacheUsage := "directory of the shared token cache, created 0700 (env " + EnvCacheDir + ")"
	if cache.Unavailable != "" {
		cacheUsage += "; " + cache.Unavailable
	}
	fs.StringVar(&f.CacheDir, "cache-dir", envOr(getenv, EnvCacheDir, defaultCacheDir()), cacheUsage)
	fs.BoolVar(&f.NoCache, "no-cache", false, "do not use the disk cache")
	fs.DurationVar(&f.Timeout, "timeout", timeout, "bound on the whole call, under the kubelet's 60s kill (env "+EnvTimeout+")")
	fs.DurationVar(&f.RefreshTimeout, "refresh-timeout", 5*time.Second, "bound on a refresh when a still-valid cached token can be served instead")
	fs.Var((*listFlag)(&f.RoleAnnotations), "role-annotation", "service account annotation key naming a per-pod role (repeatable; default "+DefaultRoleAnnotation+")")
	fs.Var((*listFlag)(&f.RegistryMap), "registry-map", "SOURCE=TARGET: answer for registry host SOURCE with the token of ECR registry TARGET[/prefix], for pull-through caches and custom domains (repeatable or comma-separated; env "+registrymap.Env+")")
	fs.StringVar(&f.RegistryMapFile, "registry-map-file", "", "file of further SOURCE=TARGET entries, one a line, # comments")
}

// defaultCacheDir is the node's directory for root, as the kubelet runs us,
// and the user's cache directory for anyone trying the plugin by hand; none
// where there is no disk cache. It
// joins with path, as package cache does, to keep path/filepath out of the
// cache-hit path.
func defaultCacheDir() string {
	if cache.Unavailable != "" {
		return ""
	}
	if os.Geteuid() == 0 {
		return DefaultCacheDir
	}
	if d, err := os.UserCacheDir(); err == nil {
		return path.Join(d, "ecr-credential-provider")
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

func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envInt(getenv func(string) string, key string, def int) (int, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s=%q: want 0, 1 or 2", key, protocol.Clip(v))
	}
	return n, nil
}

func envDuration(getenv func(string) string, key string, def time.Duration) (time.Duration, error) {
	v := getenv(key)
	if v == "" {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d <= 0 || d >= KubeletKill {
		return 0, fmt.Errorf("%s=%q: want a duration such as 20s, more than 0 and less than the kubelet's 60s kill", key, protocol.Clip(v))
	}
	return d, nil
}

// Config returns the run settings the flags choose, without a cache, logger
// or fetcher: the caller decides what to pay for.
func (f Flags) Config(getenv func(string) string) Config {
	return Config{
		Timeout:         f.Timeout,
		RefreshTimeout:  f.RefreshTimeout,
		RoleAnnotations: f.RoleAnnotations,
		Getenv:          getenv,
	}
}

// Map reads the registry map from the flags, the map file and the env, and
// refuses the whole map if any entry is bad: a half-applied map would send
// some images' tokens to the wrong registry.
func (f Flags) Map(getenv func(string) string) (registrymap.Map, error) {
	entries := append([]string(nil), f.RegistryMap...)
	entries = append(entries, registrymap.SplitList(getenv(registrymap.Env))...)
	if f.RegistryMapFile != "" {
		more, err := registrymap.ReadFile(f.RegistryMapFile)
		if err != nil {
			return registrymap.Map{}, err
		}
		entries = append(entries, more...)
	}
	return registrymap.Parse(entries)
}

// OpenCache opens the disk cache the flags name, or returns nil when the
// cache is turned off.
func (f Flags) OpenCache() (*cache.Dir, error) {
	if f.NoCache || f.CacheDir == "" {
		return nil, nil
	}
	return cache.Open(f.CacheDir)
}
