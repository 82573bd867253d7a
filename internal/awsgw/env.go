package awsgw

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"

	"github.com/agentry/agentry/internal/config"
	"github.com/agentry/agentry/internal/observe"
)

// FromEnv builds the gateway from AGENTRY_* variables and the standard AWS
// credential/endpoint variables: what each Lambda main calls.
func FromEnv(ctx context.Context) (*Gateway, error) {
	cfg, err := config.FromEnv(nil)
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	log := observe.NewLogger(os.Stdout, level)
	slog.SetDefault(log)
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx)
	if err != nil {
		return nil, fmt.Errorf("aws configuration: %w", err)
	}
	return New(ctx, cfg, awsCfg, log)
}
