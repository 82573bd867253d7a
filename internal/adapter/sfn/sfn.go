// Package sfn runs workflow steps on AWS Step Functions: it implements
// gateway.WorkflowRunner over the coordination state machine that the CDK
// stack defines (awsres.CoordinationDefinition). It only starts executions
// and completes waiting steps; what a step means is decided in
// internal/core/workflow.
package sfn

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/agentry/agentry/internal/usecase/gateway"
)

// API is the part of the Step Functions client the runner calls.
type API interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, opts ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	SendTaskSuccess(ctx context.Context, in *sfn.SendTaskSuccessInput, opts ...func(*sfn.Options)) (*sfn.SendTaskSuccessOutput, error)
}

// Runner starts one execution per workflow and hands decisions to its
// waiting steps.
type Runner struct {
	api     API
	machine string // state machine ARN
}

var _ gateway.WorkflowRunner = (*Runner)(nil)

// New returns a Runner for the state machine machineARN.
func New(api API, machineARN string) (*Runner, error) {
	if api == nil || machineARN == "" {
		return nil, errors.New("sfn: a client and a state machine ARN are required")
	}
	return &Runner{api: api, machine: machineARN}, nil
}

// executionName: Step Functions allows 1-80 characters of letters, digits,
// '-' and '_'. Workflow ids are message ids (UUIDs or ULIDs), which fit.
var executionName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)

// Run starts the workflow's execution, named after the workflow id, so a
// repeated start (a redelivered start task) finds the execution there.
func (r *Runner) Run(ctx context.Context, d gateway.Decision) error {
	if !executionName.MatchString(d.WorkflowID) {
		return fmt.Errorf("sfn: workflow id %q cannot name an execution", d.WorkflowID)
	}
	input, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("sfn: run %s: %w", d.WorkflowID, err)
	}
	_, err = r.api.StartExecution(ctx, &sfn.StartExecutionInput{
		StateMachineArn: aws.String(r.machine),
		Name:            aws.String(d.WorkflowID),
		Input:           aws.String(string(input)),
	})
	// AWS answers a start with the same name and input with the running
	// execution; with another input (not possible here: the first round
	// is derived from the stored state) it would be this error.
	var exists *types.ExecutionAlreadyExists
	if err != nil && !errors.As(err, &exists) {
		return fmt.Errorf("sfn: run %s: %w", d.WorkflowID, err)
	}
	return nil
}

// Resume completes the step waiting with token. A step that has already
// ended — its token used, timed out, its execution over — is not an error:
// the gateway releases tokens again when it repairs after a crash.
func (r *Runner) Resume(ctx context.Context, token string, d gateway.Decision) error {
	output, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("sfn: resume %s: %w", d.WorkflowID, err)
	}
	_, err = r.api.SendTaskSuccess(ctx, &sfn.SendTaskSuccessInput{TaskToken: aws.String(token), Output: aws.String(string(output))})
	var (
		timedOut *types.TaskTimedOut
		gone     *types.TaskDoesNotExist
		invalid  *types.InvalidToken
	)
	if err == nil || errors.As(err, &timedOut) || errors.As(err, &gone) || errors.As(err, &invalid) {
		return nil
	}
	return fmt.Errorf("sfn: resume %s: %w", d.WorkflowID, err)
}
