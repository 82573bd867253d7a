// Command agentry is the local AMTP gateway (`agentry serve`) and a thin
// command-line client of its API (send, status, inbox, ack; agents,
// schemas, workflows and dead letters for the admin). commands.go runs the
// command table of table.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/agentry/agentry/internal/adapter/signing"
	"github.com/agentry/agentry/internal/core/signature"
	"github.com/agentry/agentry/internal/runtime/awsgw"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/runtime/localgw"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func printVersion(w io.Writer) error {
	_, err := fmt.Fprintln(w, "agentry", localgw.Version)
	return err
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func serve(stdout, stderr io.Writer) error {
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)
	slog.SetDefault(log)
	localgw.TuneGC()
	localgw.LimitMemory(cfg.MaxInflightBytes)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if cfg.Backend == "aws" {
		err = serveAWS(ctx, cfg, stdout, log)
	} else {
		err = serveEmbedded(ctx, cfg, stdout, log)
	}
	log.Info("stopped")
	return err
}

func serveEmbedded(ctx context.Context, cfg config.Config, stdout io.Writer, log *slog.Logger) error {
	g, err := localgw.New(cfg, localgw.Options{Logger: log})
	if err != nil {
		return err
	}
	if err := g.Listen(); err != nil {
		_ = g.Close()
		return err
	}
	if g.AdminKeyGenerated {
		fmt.Fprintf(stdout, "generated admin key (stored in %s/admin.key; shown once):\n  %s\n", cfg.DataDir, g.Config.AdminKey)
	}
	if g.SigningKeyNotice != "" {
		fmt.Fprintln(stdout, g.SigningKeyNotice)
		log.Warn("signing key", "notice", g.SigningKeyNotice)
	}
	fmt.Fprintf(stdout, "agentry %s: AMTP gateway for %s listening on %s (data in %s)\n", localgw.Version, cfg.Domain, g.Addr(), cfg.DataDir)
	fmt.Fprintf(stdout, "publish: _amtp.%s. IN TXT %q\n", cfg.Domain, g.Service.TXTRecord())
	// Other gateways refuse our mail until they can find this key.
	rec, err := signing.KeyRecord(g.Signer)
	if err != nil {
		_ = g.Close()
		return err
	}
	fmt.Fprintf(stdout, "publish: %s\n", rec)
	return g.Serve(ctx)
}

// serveAWS runs the same API on the AWS adapters, with an SQS poller in
// place of the deliver Lambda and another in place of the deadletter one.
func serveAWS(ctx context.Context, cfg config.Config, stdout io.Writer, log *slog.Logger) error {
	if cfg.AdminKey == "" && cfg.AdminKeySecretARN == "" {
		return errors.New("AGENTRY_BACKEND=aws needs AGENTRY_ADMIN_KEY or AGENTRY_ADMIN_KEY_SECRET_ARN")
	}
	// There is no data dir to keep a generated key in on AWS.
	if cfg.SigningKey == "" && cfg.SigningKeyFile == "" && cfg.SigningKeySecretARN == "" {
		return errors.New("AGENTRY_BACKEND=aws needs AGENTRY_SIGNING_KEY, AGENTRY_SIGNING_KEY_FILE or AGENTRY_SIGNING_KEY_SECRET_ARN (agentry keygen makes one)")
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("aws configuration: %w", err)
	}
	awsgw.Version = localgw.Version
	if cfg.AWSBootstrap {
		// Here, not in awsgw.New: the Lambda functions, which build the
		// gateway there too, never create resources.
		if cfg, err = awsgw.Bootstrap(ctx, cfg, awsCfg); err != nil {
			return err
		}
	}
	g, err := awsgw.New(ctx, cfg, awsCfg, log)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	fmt.Fprintf(stdout, "agentry %s: AMTP gateway for %s listening on %s (AWS backend: table %s, queue %s)\n", localgw.Version, cfg.Domain, l.Addr(), g.Config.Table, g.Config.QueueURL)
	fmt.Fprintf(stdout, "publish: _amtp.%s. IN TXT %q\n", cfg.Domain, g.Service.TXTRecord())
	// The key record on AWS too: from the configured PEM or, with a
	// Secrets Manager key, read once now so that the operator sees it.
	signer, err := signing.Configured(cfg)
	if err == nil && signer == nil && cfg.SigningKeySecretARN != "" {
		signer, err = awsgw.LoadSigner(ctx, cfg, awsCfg)
	}
	if err != nil {
		_ = l.Close()
		return err
	}
	if rec, err := signing.KeyRecord(signer); err == nil {
		fmt.Fprintf(stdout, "publish: %s\n", rec)
	}
	return localgw.RunServer(ctx, g.Config, l, g.Handler, log,
		func(ctx context.Context) { _ = g.Worker.Run(ctx) },
		g.PollDeadLetters)
}

func dnsRecord(stdout io.Writer) error {
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	rec := gateway.TXTRecord(cfg.PublicURL, gateway.AuthMethodsFor(cfg.OAuth(), cfg.RequirePeerMTLS), cfg.MaxMessageBytes)
	fmt.Fprintf(stdout, "_amtp.%s. 300 IN TXT %q\n", cfg.Domain, rec)
	// The key record too, when there is a key to read: the configured one,
	// or the one a local gateway generated in its data dir. dns-record
	// never generates a key itself.
	signer, err := signing.Configured(cfg)
	if err != nil {
		return err
	}
	if signer == nil && cfg.Backend == "embedded" {
		if _, statErr := os.Stat(filepath.Join(cfg.DataDir, signing.KeyFileName)); statErr == nil {
			if signer, _, err = signing.LoadLocal(cfg); err != nil {
				return err
			}
		}
	}
	if signer == nil {
		return nil
	}
	keyRec, err := signing.KeyRecord(signer)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, keyRec)
	return nil
}

// runKeygen writes a new signing key as a PKCS#8 PEM file (0600, never over
// an existing file) and prints the key record to publish for it.
func runKeygen(inv *invocation, args []string) error {
	fs := inv.flagSet()
	alg := fs.String("alg", string(signature.ES256), "algorithm: ES256 or RS256 (2048 bits)")
	selector := fs.String("selector", "", "selector the key is published under (default AGENTRY_SIGNING_SELECTOR or k1)")
	domain := fs.String("domain", "", "domain the key signs for (default AGENTRY_DOMAIN)")
	out := fs.String("out", "signing.pem", "file to write the private key to")
	if _, err := inv.parse(fs, args, 0, 0); err != nil {
		return err
	}
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if *domain != "" {
		cfg.Domain = *domain
	}
	if *selector != "" {
		cfg.SigningSelector = *selector
	}
	a, err := signature.ParseAlgorithm(*alg)
	if err != nil {
		return err
	}
	key, err := signature.GenerateKey(a)
	if err != nil {
		return err
	}
	// NewSigner checks domain and selector before anything is written.
	signer, err := signature.NewSigner(cfg.Domain, cfg.SigningSelector, key)
	if err != nil {
		return err
	}
	pemData, err := signature.EncodePrivateKeyPEM(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	if _, err := f.Write(pemData); err != nil {
		_ = f.Close()
		return fmt.Errorf("write key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	rec, err := signing.KeyRecord(signer)
	if err != nil {
		return err
	}
	fmt.Fprintf(inv.stderr, "wrote %s %s key to %s; use it with AGENTRY_SIGNING_KEY_FILE=%s and publish:\n", a, cfg.Domain, *out, *out)
	fmt.Fprintln(inv.stdout, rec)
	return nil
}
