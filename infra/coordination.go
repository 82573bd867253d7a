package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/jsii-runtime-go"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/cfntemplate"
)

// newCoordination adds the coordination state machine (docs/workflows.md).
// Its definition is awsres.CoordinationDefinition, the same text the tests
// execute in moto from the synthesized template. Standard type: only
// Standard workflows can wait for a task token, and a workflow may wait up
// to seven days. Its role may put tasks on the delivery queue and nothing
// else; the functions that start executions and complete steps are
// granted exactly that on this one machine (see grant).
func newCoordination(stack awscdk.Stack, r *resources) {
	role := awsiam.NewRole(stack, jsii.String("CoordinationRole"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("states.amazonaws.com"), nil),
		Description: jsii.String("Agentry coordination state machine: send workflow steps to the delivery queue"),
	})
	r.queue.GrantSendMessages(role)
	r.machine = awsstepfunctions.NewStateMachine(stack, jsii.String("Coordination"), &awsstepfunctions.StateMachineProps{
		StateMachineName:        jsii.String(r.names.StateMachine),
		StateMachineType:        awsstepfunctions.StateMachineType_STANDARD,
		DefinitionBody:          awsstepfunctions.DefinitionBody_FromString(jsii.String(awsres.CoordinationDefinition)),
		DefinitionSubstitutions: &map[string]*string{awsres.CoordinationQueueVar: r.queue.QueueUrl()},
		Role:                    role,
		TracingEnabled:          jsii.Bool(true),
		RemovalPolicy:           removal(r.settings),
	})
	tagRole(r.machine, cfntemplate.RoleCoordination)
}
