package sfn_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awssfn "github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/agentry/agentry/internal/adapter/sfn"
	"github.com/agentry/agentry/internal/adapter/sqsq"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// The runner against moto executing the coordination machine of the
// synthesized template: a round asks two participants through the delivery
// queue (tasks in sqsq's format, each with its token), and one decision
// handed to both steps ends the execution the way the decision says.
func TestRunnerDrivesTheCoordinationMachine(t *testing.T) {
	_, ep := awstest.Resources(t)
	require.NotEmpty(t, ep.StateMachineARN, "the template has no coordination state machine")
	cfg := awstest.Config(t)
	api := awssfn.NewFromConfig(cfg)
	r, err := sfn.New(api, ep.StateMachineARN)
	require.NoError(t, err)
	// moto runs the machine in the background and, on a busy machine,
	// takes many seconds per state: the waits and the step's deadline are
	// far beyond that, and cost nothing when it is quick.
	const settle = 2 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), 3*settle)
	defer cancel()

	const id = "01960000-0000-7000-8000-000000000001"
	first := gateway.Decision{WorkflowID: id, Next: gateway.DecisionAsk, Round: 1, Status: "in_progress", TimeoutSeconds: 3600,
		Ask: []gateway.AskItem{{Address: "a@x.test"}, {Address: "b@x.test"}}}
	require.NoError(t, r.Run(ctx, first))
	require.NoError(t, r.Run(ctx, first), "a second start of the same workflow is not an error")

	// Both steps arrive on the delivery queue as workflow_step tasks.
	q := sqs.NewFromConfig(cfg)
	steps := map[string]gateway.Task{}
	require.Eventually(t, func() bool {
		out, err := q.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: aws.String(ep.DeliveryQueueURL), MaxNumberOfMessages: 10})
		require.NoError(t, err)
		for _, m := range out.Messages {
			task, err := sqsq.ParseTask(aws.ToString(m.Body))
			require.NoError(t, err, "a step is a task in sqsq's format: %s", aws.ToString(m.Body))
			steps[task.Recipients[0]] = task
		}
		return len(steps) == 2
	}, settle, 100*time.Millisecond)
	for addr, task := range steps {
		assert.Equal(t, gateway.TaskWorkflowStep, task.Kind)
		assert.Equal(t, id, task.MessageID)
		assert.Equal(t, 1, task.Round)
		assert.NotEmpty(t, task.Token, "step for %s without a token", addr)
	}

	done := gateway.Decision{WorkflowID: id, Next: gateway.DecisionDone, Round: 2, Ask: []gateway.AskItem{}, Status: "completed"}
	for _, task := range steps {
		require.NoError(t, r.Resume(ctx, task.Token, done))
	}
	// Released twice (a driver repairing after a crash): not an error.
	require.NoError(t, r.Resume(ctx, steps["a@x.test"].Token, done))

	arn := strings.Replace(ep.StateMachineARN, ":stateMachine:", ":execution:", 1) + ":" + id
	var final *awssfn.DescribeExecutionOutput
	require.Eventually(t, func() bool {
		final, err = api.DescribeExecution(ctx, &awssfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		return err == nil && final.Status != sfntypes.ExecutionStatusRunning
	}, settle, 100*time.Millisecond)
	assert.Equal(t, sfntypes.ExecutionStatusSucceeded, final.Status)
	var out gateway.Decision
	require.NoError(t, json.Unmarshal([]byte(aws.ToString(final.Output)), &out))
	assert.Equal(t, done, out, "the machine ends with the decision it was given")
}

func TestNewNeedsClientAndMachine(t *testing.T) {
	_, err := sfn.New(nil, "arn")
	assert.Error(t, err)
	_, err = sfn.New(awssfn.New(awssfn.Options{}), "")
	assert.Error(t, err)
}

func TestRunRefusesIDsThatCannotNameAnExecution(t *testing.T) {
	r, err := sfn.New(awssfn.New(awssfn.Options{Region: "us-east-1"}), "arn:aws:states:us-east-1:123456789012:stateMachine:x")
	require.NoError(t, err)
	err = r.Run(context.Background(), gateway.Decision{WorkflowID: "has space"})
	assert.ErrorContains(t, err, "cannot name an execution")
}
