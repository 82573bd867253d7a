// Command bootstrap creates Agentry's AWS resources in a local emulator
// (moto from `make emulators-up`, or LocalStack) and prints where they are.
// It uses the same awsres.Ensure as `agentry serve` with
// AGENTRY_AWS_BOOTSTRAP=1 and the tests, so the emulator holds exactly the
// resources the gateway expects.
//
//	AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_REGION=us-east-1 \
//	AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test go run ./localstack/bootstrap
//
// The prefix is AGENTRY_RESOURCE_PREFIX, by default derived from
// AGENTRY_DOMAIN (default localhost): the values `agentry serve` reads,
// through the same internal/runtime/config code, so the two cannot disagree.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/runtime/config"
)

func main() {
	wait := flag.Duration("wait", 30*time.Second, "how long to wait for the emulator to answer")
	flag.Parse()
	if err := run(*wait, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bootstrap:", err)
		os.Exit(1)
	}
}

func run(wait time.Duration, out io.Writer) error {
	endpoint := strings.TrimRight(os.Getenv("AWS_ENDPOINT_URL"), "/")
	if endpoint == "" {
		// This program is for emulators; without an endpoint the SDK would
		// create resources in whatever real account the credentials reach.
		return errors.New("AWS_ENDPOINT_URL is not set; refusing to create resources in real AWS (deploy with infra/ instead)")
	}
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	names, err := awsres.NamesFor(cfg.ResourcePrefix)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait+2*time.Minute)
	defer cancel()
	if err := waitAnswering(ctx, endpoint, wait); err != nil {
		return err
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return fmt.Errorf("aws configuration: %w", err)
	}
	if awsCfg.Region == "" {
		return errors.New("AWS_REGION is not set (any region works with an emulator, e.g. us-east-1)")
	}
	ep, err := awsres.Ensure(ctx, awsCfg, names)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "resources for prefix %s at %s (region %s):\n", names.Prefix, endpoint, awsCfg.Region)
	fmt.Fprintf(out, "  table           %s\n", ep.Table)
	fmt.Fprintf(out, "  delivery queue  %s\n", ep.DeliveryQueueURL)
	fmt.Fprintf(out, "  dead letters    %s (%s)\n", ep.DeadLetterURL, ep.DeadLetterARN)
	fmt.Fprintf(out, "  bucket          %s\n", ep.Bucket)
	return nil
}

// waitAnswering polls until the emulator answers HTTP at all. It asks
// moto's /moto-api/; LocalStack answers that path with an error status,
// which serves as well: any answer means the server is up, only a failed
// connection means it is not (yet).
func waitAnswering(ctx context.Context, endpoint string, within time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(within)
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/moto-api/", nil)
		if err != nil {
			return fmt.Errorf("AWS_ENDPOINT_URL %q: %w", endpoint, err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no emulator answering at %s after %s: %w", endpoint, within, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
