package awsres

// The coordination state machine (docs/workflows.md). One machine serves
// every coordination type, because the Go core (internal/core/workflow, driven
// by internal/usecase/gateway) decides everything: the machine only waits. Each
// round is a Map with one step per participant to ask; a step puts a
// workflow_step task carrying its task token on the delivery queue and
// waits until the gateway hands it the next decision (SendTaskSuccess).
// Choice states route on what the core decided (next, branch, status) and
// never evaluate a condition. A step that waits past the workflow's
// deadline (TimeoutSecondsPath) answers "expired" itself, and the round
// ends through "Expired", which tells the gateway with a workflow_timeout
// task; the core then times the workflow out and sends the initiator its
// result. (The timeout is caught inside the iteration rather than on the
// Map: moto 5.2.1 fails a Map whose Catch receives States.Timeout.)
//
// The execution input and every step's output are gateway.Decision JSON:
//
//	{"workflow_id","next":"ask"|"done"|"expired","round","ask":[{"address"}],"branch","status","timeout_seconds"}
//
// Task bodies follow internal/adapter/sqsq's format version 1.

// CoordinationQueueVar is the definition's substitution variable for the
// delivery queue URL (CloudFormation DefinitionSubstitutions).
const CoordinationQueueVar = "DeliveryQueueUrl"

// CoordinationDefinition is the machine's ASL with ${DeliveryQueueUrl}
// left to substitute.
const CoordinationDefinition = `{
  "Comment": "Agentry AMTP coordination: the Go core decides, this machine waits for participants (docs/workflows.md)",
  "StartAt": "Route",
  "States": {
    "Route": {
      "Type": "Choice",
      "Choices": [
        {"Variable": "$.next", "StringEquals": "expired", "Next": "Expired"},
        {"And": [{"Variable": "$.next", "StringEquals": "ask"}, {"Variable": "$.branch", "StringEquals": "then"}], "Next": "Then"},
        {"And": [{"Variable": "$.next", "StringEquals": "ask"}, {"Variable": "$.branch", "StringEquals": "else"}], "Next": "Else"},
        {"Variable": "$.next", "StringEquals": "ask", "Next": "Ask"},
        {"Variable": "$.status", "StringEquals": "completed", "Next": "Completed"},
        {"Variable": "$.status", "StringEquals": "timed_out", "Next": "TimedOut"}
      ],
      "Default": "Failed"
    },
    "Then": {"Type": "Pass", "Comment": "the condition held", "Next": "Ask"},
    "Else": {"Type": "Pass", "Comment": "the condition did not hold", "Next": "Ask"},
    "Ask": {
      "Type": "Map",
      "ItemsPath": "$.ask",
      "Parameters": {
        "workflow_id.$": "$.workflow_id",
        "round.$": "$.round",
        "timeout_seconds.$": "$.timeout_seconds",
        "address.$": "$$.Map.Item.Value.address"
      },
      "Iterator": {
        "StartAt": "Participant",
        "States": {
          "Participant": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
              "QueueUrl": "${DeliveryQueueUrl}",
              "MessageBody": {
                "v": 1,
                "id.$": "States.Format('{}|step-{}|{}', $.workflow_id, $.round, $.address)",
                "message_id.$": "$.workflow_id",
                "kind": "workflow_step",
                "recipients.$": "States.Array($.address)",
                "round.$": "$.round",
                "token.$": "$$.Task.Token",
                "attempt": 0
              }
            },
            "TimeoutSecondsPath": "$.timeout_seconds",
            "Catch": [{"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "Overdue"}],
            "End": true
          },
          "Overdue": {
            "Type": "Pass",
            "Comment": "the step outlived the workflow's deadline",
            "Parameters": {"workflow_id.$": "$.workflow_id", "next": "expired", "round.$": "$.round", "ask": [], "branch": "", "status": "in_progress", "timeout_seconds": 0},
            "End": true
          }
        }
      },
      "ResultPath": "$.answers",
      "Next": "Decided"
    },
    "Decided": {"Type": "Pass", "InputPath": "$.answers[0]", "Next": "Route"},
    "Expired": {
      "Type": "Task",
      "Resource": "arn:aws:states:::sqs:sendMessage",
      "Parameters": {
        "QueueUrl": "${DeliveryQueueUrl}",
        "MessageBody": {
          "v": 1,
          "id.$": "States.Format('{}|workflow-timeout', $.workflow_id)",
          "message_id.$": "$.workflow_id",
          "kind": "workflow_timeout",
          "attempt": 0
        }
      },
      "ResultPath": null,
      "Next": "TimedOut"
    },
    "Completed": {"Type": "Succeed"},
    "TimedOut": {"Type": "Fail", "Error": "Workflow.TimedOut", "Cause": "the workflow's deadline passed"},
    "Failed": {"Type": "Fail", "Error": "Workflow.Failed", "Cause": "a participant failed the workflow"}
  }
}`
