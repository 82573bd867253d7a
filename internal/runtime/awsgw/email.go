package awsgw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/agentry/agentry/internal/adapter/ses"
	"github.com/agentry/agentry/internal/core/amtp"
	"github.com/agentry/agentry/internal/core/email"
	"github.com/agentry/agentry/internal/core/schema"
	"github.com/agentry/agentry/internal/runtime/config"
	"github.com/agentry/agentry/internal/usecase/bridge"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// NewInbound builds the gateway of the inbound-email function: without
// the HTTP API, like NewWorker, but with the schema registry, because it
// accepts messages as the api function does (payloads validated, the
// wrapped email's schema registered).
func NewInbound(ctx context.Context, cfg config.Config, awsCfg aws.Config, log *slog.Logger, opts ...Option) (*Gateway, error) {
	var schemas func(schema.Store) gateway.SchemaRegistry
	if cfg.SchemaValidation {
		schemas = func(st schema.Store) gateway.SchemaRegistry { return schema.NewRegistry(st) }
	}
	return build(ctx, cfg, awsCfg, log, schemas, opts)
}

// InboundFromEnv is NewInbound from the function's environment.
func InboundFromEnv(ctx context.Context) (*Gateway, error) {
	return fromEnv(ctx, NewInbound)
}

// mailCalls is the S3 operation the inbound-email function makes, as a
// method value (see sfnCalls).
type mailCalls struct {
	get func(context.Context, *s3.GetObjectInput, ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// ReceiveEmail handles one SES receipt event (the inbound-email
// function): the receipt rule stored each email in the bucket under
// AGENTRY_SES_INBOUND_PREFIX, then invoked us (asynchronously) with its
// verdicts. A refusal is final: SES already answered the sending MTA, so
// it is logged and counted, not retried. A temporary failure is returned,
// and Lambda retries the event.
func (g *Gateway) ReceiveEmail(ctx context.Context, ev events.SimpleEmailEvent) error {
	var errs []error
	for _, rec := range ev.Records {
		if err := g.receiveOne(ctx, rec.SES); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func (g *Gateway) receiveOne(ctx context.Context, rec events.SimpleEmailService) error {
	id := rec.Mail.MessageID
	raw, err := g.storedEmail(ctx, id)
	if err != nil {
		return err
	}
	v := ses.ReceiptVerdicts(rec.Receipt)
	res, err := g.Bridge.Receive(ctx, bridge.Inbound{Raw: raw, Recipients: rec.Receipt.Recipients, SES: &bridge.Verdicts{
		SPF: bridge.Verdict(v.SPF), DKIM: bridge.Verdict(v.DKIM), DMARC: bridge.Verdict(v.DMARC),
		Spam: bridge.Verdict(v.Spam), Virus: bridge.Verdict(v.Virus),
	}})
	if ae, ok := amtp.AsError(err); ok {
		g.log.WarnContext(ctx, "inbound email refused", "ses_message_id", id, "error_code", string(ae.Code), "error", ae.Message)
		return nil
	}
	if err != nil {
		return fmt.Errorf("inbound email %s: %w", id, err)
	}
	g.log.InfoContext(ctx, "inbound email accepted", "ses_message_id", id, "kind", string(res.Kind))
	return nil
}

// storedEmail reads what the receipt rule's S3 action stored, bounded by
// the bridge's size limit (a larger object is read only that far, and the
// bridge refuses it).
func (g *Gateway) storedEmail(ctx context.Context, sesID string) ([]byte, error) {
	if sesID == "" || strings.ContainsAny(sesID, "/\\") {
		return nil, fmt.Errorf("receipt event without a usable message id %q", sesID)
	}
	key := g.Config.Email.SESInboundPrefix + sesID
	out, err := g.mail.get(ctx, &s3.GetObjectInput{Bucket: aws.String(g.Config.Bucket), Key: aws.String(key)})
	if err != nil {
		return nil, fmt.Errorf("read received email s3://%s/%s: %w", g.Config.Bucket, key, err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, email.DefaultLimits.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read received email %s: %w", key, err)
	}
	return raw, nil
}
