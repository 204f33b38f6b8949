package plugin

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/cache"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
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
	fs := flag.NewFlagSet("ecr-credential-provider", flag.ContinueOnError)
	fs.SetOutput(output)
	// -h is the caller's to answer (flag.ErrHelp): the CLI prints help
	// with a description, not the flag package's bare list.
	fs.Usage = func() {}
	f.Register(fs, getenv)
	var rest []string
	for _, a := range args {
		if a != "get-credentials" {
			rest = append(rest, a)
		}
	}
	if err := fs.Parse(rest); err != nil {
		return Flags{}, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("unexpected argument %q (run 'ecr-credential-provider help')", fs.Arg(0))
		fmt.Fprintf(output, "ecr-credential-provider: %v\n", err)
		return Flags{}, err
	}
	return f, nil
}

// Register defines the plugin's flags on fs, with defaults from getenv:
// the one definition that parsing and the CLI's help both use.
func (f *Flags) Register(fs *flag.FlagSet, getenv func(string) string) {
	fs.IntVar(&f.Verbosity, "v", envInt(getenv, EnvLogLevel, 0), "log verbosity: 0 warnings and errors, 1 info, 2 debug (env "+EnvLogLevel+")")
	fs.StringVar(&f.LogFile, "log-file", getenv(EnvLogFile), "append logs to this file instead of stderr (env "+EnvLogFile+")")
	fs.StringVar(&f.CacheDir, "cache-dir", envOr(getenv, EnvCacheDir, defaultCacheDir()), "directory of the shared token cache, created 0700 (env "+EnvCacheDir+")")
	fs.BoolVar(&f.NoCache, "no-cache", false, "do not use the disk cache")
	fs.DurationVar(&f.Timeout, "timeout", envDuration(getenv, EnvTimeout, 20*time.Second), "bound on the whole call, kept well under the kubelet's 60s (env "+EnvTimeout+")")
	fs.DurationVar(&f.RefreshTimeout, "refresh-timeout", 5*time.Second, "bound on a refresh when a still-valid cached token can be served instead")
	fs.Var((*listFlag)(&f.RoleAnnotations), "role-annotation", "service account annotation key naming a per-pod role (repeatable; default "+DefaultRoleAnnotation+")")
	fs.Var((*listFlag)(&f.RegistryMap), "registry-map", "SOURCE=TARGET: answer for registry host SOURCE with the token of ECR registry TARGET[/prefix], for pull-through caches and custom domains (repeatable or comma-separated; env "+registrymap.Env+")")
	fs.StringVar(&f.RegistryMapFile, "registry-map-file", "", "file of further SOURCE=TARGET entries, one a line, # comments")
}

// defaultCacheDir is the node's directory for root, as the kubelet runs us,
// and the user's cache directory for anyone trying the plugin by hand. It
// joins with path, as package cache does, to keep path/filepath out of the
// cache-hit path.
func defaultCacheDir() string {
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

func envInt(getenv func(string) string, key string, def int) int {
	var n int
	if _, err := fmt.Sscan(getenv(key), &n); err == nil {
		return n
	}
	return def
}

func envDuration(getenv func(string) string, key string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(getenv(key)); err == nil && d > 0 {
		return d
	}
	return def
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
