package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/kubecred/ecr-credential-provider/internal/plugin"
	"github.com/kubecred/ecr-credential-provider/internal/protocol"
	"github.com/kubecred/ecr-credential-provider/internal/registrymap"
	"github.com/kubecred/ecr-credential-provider/internal/token"
)

// runPlugin is the kubelet's entry point. Stdout carries exactly one JSON
// response or nothing; everything else goes to stderr or the log file.
func runPlugin(ctx context.Context, env *Env, args []string) int {
	flags, err := plugin.ParseFlags(args, env.getenv, env.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		writeHelp(env.Stdout, pluginFlagSet(env))
		return 0
	}
	if err != nil {
		return 2
	}
	// One deadline for everything: reading stdin, opening the log file,
	// the cache and AWS.
	ctx, cancel := context.WithTimeout(ctx, flags.Timeout)
	defer cancel()
	var logOut io.Writer = env.Stderr
	var logFileErr error
	if flags.LogFile != "" {
		if f, err := openLogFile(flags.LogFile); err != nil {
			logFileErr = err
		} else {
			defer f.Close()
			logOut = f
		}
	}
	toFile := logOut != env.Stderr
	level := slog.LevelWarn
	switch {
	case flags.Verbosity >= 2:
		level = slog.LevelDebug
	case flags.Verbosity == 1:
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(logOut, &slog.HandlerOptions{Level: level}))
	if logFileErr != nil {
		log.Warn("logging to stderr instead of --log-file", "error", logFileErr)
	}

	if f, ok := env.Stdin.(*os.File); ok && isTerminal(f) {
		fmt.Fprintln(env.Stderr, "ecr-credential-provider: reading a CredentialProviderRequest from stdin, as the kubelet sends it (end with Ctrl-D; 'ecr-credential-provider help' lists the other commands)")
	}
	deadline, _ := ctx.Deadline()
	data, err := plugin.ReadStdin(env.Stdin, time.Until(deadline))
	if err != nil {
		return fail(env, log, toFile, err)
	}
	req, err := protocol.DecodeRequest(data)
	if err != nil {
		return fail(env, log, toFile, err)
	}
	cfg := flags.Config(env.getenv)
	if cfg.RegistryMap, err = flags.Map(env.getenv); err != nil {
		return fail(env, log, toFile, fmt.Errorf("%w (fix --registry-map, --registry-map-file or %s in the provider's args or env)", err, registrymap.Env))
	}
	cfg.Logger = log
	cfg.Fetcher = token.New(token.Options{Logger: log, Version: Version})
	if dir, err := flags.OpenCache(); err != nil {
		log.Warn("running without the disk cache", "error", err)
	} else {
		cfg.Cache = dir
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
	fmt.Fprintf(env.Stderr, "ecr-credential-provider: %s\n", strings.Join(strings.Fields(err.Error()), " "))
	if toFile {
		log.Error("request failed", "error", err)
	}
	return 1
}
