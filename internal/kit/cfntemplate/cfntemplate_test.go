package cfntemplate_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/awstest"
	"github.com/agentry/agentry/internal/kit/cfntemplate"
)

// The committed synth of the dev stack (make snapshot refreshes it).
var snapshotPath = filepath.Join("..", "..", "..", "infra", "testdata", "agentry-dev.template.json")

func snapshot(t *testing.T) *cfntemplate.Template {
	t.Helper()
	tmpl, err := cfntemplate.Load(snapshotPath)
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

func TestPlanOfSnapshot(t *testing.T) {
	tmpl := snapshot(t)
	p := "plan-1"
	plan, err := cfntemplate.NewPlan(tmpl, cfntemplate.Options{Prefix: p})
	if err != nil {
		t.Fatal(err)
	}
	names, _ := awsres.NamesFor(p)
	var order []string
	for _, s := range plan.Steps {
		order = append(order, s.Role)
	}
	// The DLQ must exist before the queue whose redrive policy names it.
	if i, j := indexOf(order, cfntemplate.RoleDeadLetterQueue), indexOf(order, cfntemplate.RoleDeliveryQueue); i < 0 || j < 0 || i > j {
		t.Errorf("creation order %v", order)
	}
	for role, want := range map[string]string{
		cfntemplate.RoleTable: names.Table, cfntemplate.RoleDeliveryQueue: names.DeliveryQueue,
		cfntemplate.RoleDeadLetterQueue: names.DeadLetter, cfntemplate.RoleBodiesBucket: names.Bucket,
	} {
		s, ok := plan.Step(role)
		if !ok || s.Name != want {
			t.Errorf("%s: %q, want %q", role, s.Name, want)
		}
	}
	q, _ := plan.Step(cfntemplate.RoleDeliveryQueue)
	var rp struct {
		DeadLetterTargetArn string `json:"deadLetterTargetArn"`
		MaxReceiveCount     int    `json:"maxReceiveCount"`
	}
	if err := json.Unmarshal([]byte(q.Queue["RedrivePolicy"]), &rp); err != nil {
		t.Fatal(err)
	}
	if rp.DeadLetterTargetArn != "arn:aws:sqs:us-east-1:123456789012:"+names.DeadLetter || rp.MaxReceiveCount != awsres.MaxReceiveCount {
		t.Errorf("redrive policy %+v", rp)
	}
	tbl, _ := plan.Step(cfntemplate.RoleTable)
	if tbl.Table.TTL == nil || *tbl.Table.TTL.AttributeName != awsres.AttrTTL || !tbl.Table.PointInTimeRecovery {
		t.Errorf("table TTL/PITR: %+v", tbl.Table)
	}
	// Only stateful resources are planned: no functions, roles, alarms.
	for _, s := range plan.Steps {
		switch s.Type {
		case cfntemplate.TypeTable, cfntemplate.TypeQueue, cfntemplate.TypeBucket, cfntemplate.TypeStateMachine:
		default:
			t.Errorf("planned %s %s", s.Type, s.LogicalID)
		}
	}
}

func indexOf(list []string, v string) int {
	for i, e := range list {
		if e == v {
			return i
		}
	}
	return -1
}

// TestDeployFromSnapshot builds the dev stack's stateful resources in
// moto (its CloudFormation, then Complete) and reads them back through
// the APIs the gateway uses.
func TestDeployFromSnapshot(t *testing.T) {
	cfg := awstest.Config(t)
	c := ctx(t)
	d := awstest.Deploy(t, snapshot(t))
	names, _ := awsres.NamesFor(d.Prefix)
	// The bucket has no BucketName in the template: CloudFormation names it.
	bucket, ok := d.ByRole(cfntemplate.RoleBodiesBucket)
	if !ok || !strings.HasPrefix(bucket.Name, d.Prefix+"-") {
		t.Errorf("bucket %+v", bucket)
	}
	names.Bucket = bucket.Name
	if got := d.Names(); got != names {
		t.Errorf("names %+v, want %+v", got, names)
	}
	ep := d.Endpoints()
	if ep.Table != names.Table || ep.Bucket != names.Bucket || !strings.HasSuffix(ep.DeliveryQueueURL, "/"+names.DeliveryQueue) ||
		!strings.HasSuffix(ep.DeadLetterURL, "/"+names.DeadLetter) || !strings.HasSuffix(ep.DeadLetterARN, ":"+names.DeadLetter) {
		t.Errorf("endpoints %+v", ep)
	}

	ddb := dynamodb.NewFromConfig(cfg)
	desc, err := ddb.DescribeTable(c, &dynamodb.DescribeTableInput{TableName: aws.String(names.Table)})
	if err != nil {
		t.Fatal(err)
	}
	want := awsres.CreateTableInput(names)
	if got := keySchema(desc.Table.KeySchema); got != keySchema(want.KeySchema) {
		t.Errorf("key schema %s", got)
	}
	if len(desc.Table.GlobalSecondaryIndexes) != 2 {
		t.Errorf("GSIs: %d", len(desc.Table.GlobalSecondaryIndexes))
	}
	for _, g := range desc.Table.GlobalSecondaryIndexes {
		if string(g.Projection.ProjectionType) != awsres.GSIProjection {
			t.Errorf("GSI %s projection %s", *g.IndexName, g.Projection.ProjectionType)
		}
	}
	ttl, err := ddb.DescribeTimeToLive(c, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(names.Table)})
	if err != nil || aws.ToString(ttl.TimeToLiveDescription.AttributeName) != awsres.AttrTTL {
		t.Errorf("TTL: %v %+v", err, ttl)
	}
	pitr, err := ddb.DescribeContinuousBackups(c, &dynamodb.DescribeContinuousBackupsInput{TableName: aws.String(names.Table)})
	if err != nil || pitr.ContinuousBackupsDescription.PointInTimeRecoveryDescription == nil ||
		pitr.ContinuousBackupsDescription.PointInTimeRecoveryDescription.PointInTimeRecoveryStatus != "ENABLED" {
		t.Errorf("point-in-time recovery: %v", err)
	}

	q := sqs.NewFromConfig(cfg)
	attrs, err := q.GetQueueAttributes(c, &sqs.GetQueueAttributesInput{
		QueueUrl: aws.String(ep.DeliveryQueueURL), AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameAll},
	})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range awsres.QueueAttributes(ep.DeadLetterARN) {
		got := attrs.Attributes[k]
		if k == "RedrivePolicy" {
			var a, b map[string]any
			_ = json.Unmarshal([]byte(got), &a)
			_ = json.Unmarshal([]byte(v), &b)
			if fmt.Sprint(a["deadLetterTargetArn"]) != fmt.Sprint(b["deadLetterTargetArn"]) || fmt.Sprint(a["maxReceiveCount"]) != fmt.Sprint(b["maxReceiveCount"]) {
				t.Errorf("RedrivePolicy %s, want %s", got, v)
			}
			continue
		}
		if got != v {
			t.Errorf("queue %s = %q, want %q", k, got, v)
		}
	}

	s3c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true })
	lc, err := s3c.GetBucketLifecycleConfiguration(c, &s3.GetBucketLifecycleConfigurationInput{Bucket: aws.String(names.Bucket)})
	if err != nil || len(lc.Rules) != 1 || lc.Rules[0].Expiration == nil || aws.ToInt32(lc.Rules[0].Expiration.Days) != awsres.BodyLifecycleDays {
		t.Errorf("bucket lifecycle: %v %+v", err, lc)
	}
	pab, err := s3c.GetPublicAccessBlock(c, &s3.GetPublicAccessBlockInput{Bucket: aws.String(names.Bucket)})
	if err != nil || !aws.ToBool(pab.PublicAccessBlockConfiguration.BlockPublicAcls) || !aws.ToBool(pab.PublicAccessBlockConfiguration.RestrictPublicBuckets) {
		t.Errorf("public access block: %v", err)
	}

	// The redrive policy works: a task received MaxReceiveCount times
	// without being deleted lands in the DLQ.
	if _, err := q.SendMessage(c, &sqs.SendMessageInput{QueueUrl: aws.String(ep.DeliveryQueueURL), MessageBody: aws.String("poison")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < awsres.MaxReceiveCount+1; i++ {
		// WaitTimeSeconds 1: the queue's own default is a 20 s long poll.
		out, err := q.ReceiveMessage(c, &sqs.ReceiveMessageInput{QueueUrl: aws.String(ep.DeliveryQueueURL), WaitTimeSeconds: 1})
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range out.Messages {
			// Give it back at once, as a crashing worker would (eventually).
			if _, err := q.ChangeMessageVisibility(c, &sqs.ChangeMessageVisibilityInput{
				QueueUrl: aws.String(ep.DeliveryQueueURL), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: 0,
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	got, err := q.ReceiveMessage(c, &sqs.ReceiveMessageInput{QueueUrl: aws.String(ep.DeadLetterURL), WaitTimeSeconds: 2})
	if err != nil || len(got.Messages) != 1 || aws.ToString(got.Messages[0].Body) != "poison" {
		t.Errorf("poison message not in the DLQ: %v %+v", err, got)
	}
}

func keySchema(ks any) string {
	b, _ := json.Marshal(ks)
	return string(b)
}

// A state machine whose definition refers to a queue by URL (as a
// waitForTaskToken task does) gets the URL of the queue actually created.
const sfnTemplate = `{
  "Metadata": {"agentry:prefix": "agentry-dev"},
  "Parameters": {"Stage": {"Type": "String", "Default": "dev"}},
  "Resources": {
    "Callbacks": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "agentry-${Stage}-callbacks"}},
                  "Metadata": {"agentry:role": "callbacks"}},
    "Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": {}}},
    "Flow": {
      "Type": "AWS::StepFunctions::StateMachine",
      "Metadata": {"agentry:role": "workflow"},
      "Properties": {
        "StateMachineName": "agentry-dev-coordination",
        "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]},
        "DefinitionString": {"Fn::Join": ["", [
          "{\"StartAt\":\"Ask\",\"States\":{\"Ask\":{\"Type\":\"Task\",",
          "\"Resource\":\"arn:aws:states:::sqs:sendMessage.waitForTaskToken\",",
          "\"Parameters\":{\"QueueUrl\":\"", {"Ref": "Callbacks"}, "\",\"MessageBody\":{\"token.$\":\"$$.Task.Token\"}},",
          "\"Next\":\"Done\"},\"Done\":{\"Type\":\"Pass\",\"Result\":\"${done}\",\"End\":true}}}"
        ]]},
        "DefinitionSubstitutions": {"done": {"Fn::Sub": "finished-${Stage}"}}
      }
    },
    "Alarm": {"Type": "AWS::CloudWatch::Alarm", "Properties": {"Threshold": 1}}
  }
}`

func TestCreateStateMachine(t *testing.T) {
	cfg := awstest.Config(t)
	c := ctx(t)
	tmpl, err := cfntemplate.Parse([]byte(sfnTemplate))
	if err != nil {
		t.Fatal(err)
	}
	d := awstest.Deploy(t, tmpl)
	p := d.Prefix
	queue, ok1 := d.ByRole("callbacks")
	flow, ok2 := d.ByRole("workflow")
	if !ok1 || !ok2 || queue.Name != p+"-callbacks" || flow.Name != p+"-coordination" {
		t.Fatalf("created %+v", d.Resources)
	}
	out, err := sfn.NewFromConfig(cfg).DescribeStateMachine(c, &sfn.DescribeStateMachineInput{StateMachineArn: aws.String(flow.ARN)})
	if err != nil {
		t.Fatal(err)
	}
	def := aws.ToString(out.Definition)
	if !strings.Contains(def, `"QueueUrl":"`+queue.URL+`"`) || !strings.Contains(def, `"Result":"finished-dev"`) {
		t.Errorf("definition %s (queue %s)", def, queue.URL)
	}
	if !strings.Contains(aws.ToString(out.RoleArn), ":role/"+p+"-role") {
		t.Errorf("role %s", aws.ToString(out.RoleArn))
	}
}

func TestIntrinsics(t *testing.T) {
	tmpl, err := cfntemplate.Parse([]byte(`{
	  "Metadata": {"agentry:prefix": "agentry-dev"},
	  "Parameters": {"Stage": {"Type": "String", "Default": "dev"}, "Days": {"Type": "Number", "Default": 4}},
	  "Resources": {
	    "Q": {"Type": "AWS::SQS::Queue", "Properties": {
	      "QueueName": {"Fn::Join": ["-", ["agentry", {"Ref": "Stage"}, {"Fn::Select": [1, {"Fn::Split": [",", "a,work,c"]}]}]]},
	      "DelaySeconds": {"Ref": "Days"},
	      "KmsMasterKeyId": {"Fn::Sub": ["${A}/${!Literal}/${AWS::Region}/${Stage}", {"A": "x"}]},
	      "RedriveAllowPolicy": {"redrivePermission": "denyAll"},
	      "ContentBasedDeduplication": {"Ref": "AWS::NoValue"}
	    }}
	  }
	}`))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := cfntemplate.NewPlan(tmpl, cfntemplate.Options{Prefix: "int-1", Region: "eu-west-1", Parameters: map[string]string{"Days": "7"}})
	if err != nil {
		t.Fatal(err)
	}
	s := plan.Steps[0]
	if s.Name != "int-1-work" {
		t.Errorf("name %q", s.Name)
	}
	want := map[string]string{"DelaySeconds": "7", "KmsMasterKeyId": "x/${Literal}/eu-west-1/dev", "RedriveAllowPolicy": `{"redrivePermission":"denyAll"}`}
	if fmt.Sprint(s.Queue) != fmt.Sprint(want) {
		t.Errorf("attributes %v, want %v", s.Queue, want)
	}
}

func TestRejects(t *testing.T) {
	for name, body := range map[string]string{
		"unknown table property": `{"Metadata":{"agentry:prefix":"agentry-dev"},"Resources":{"T":{"Type":"AWS::DynamoDB::Table","Properties":{
			"KeySchema":[{"AttributeName":"pk","KeyType":"HASH"}],"StreamSpecificationX":{}}}}}`,
		"cycle": `{"Metadata":{"agentry:prefix":"agentry-dev"},"Resources":{
			"A":{"Type":"AWS::SQS::Queue","Properties":{"RedrivePolicy":{"deadLetterTargetArn":{"Fn::GetAtt":["B","Arn"]}}}},
			"B":{"Type":"AWS::SQS::Queue","Properties":{"RedrivePolicy":{"deadLetterTargetArn":{"Fn::GetAtt":["A","Arn"]}}}}}}`,
		"condition": `{"Metadata":{"agentry:prefix":"agentry-dev"},"Resources":{"A":{"Type":"AWS::SQS::Queue","Condition":"IsProd"}}}`,
		"Fn::If":    `{"Metadata":{"agentry:prefix":"agentry-dev"},"Resources":{"A":{"Type":"AWS::SQS::Queue","Properties":{"DelaySeconds":{"Fn::If":["C",1,2]}}}}}`,
		"no prefix": `{"Resources":{"A":{"Type":"AWS::SQS::Queue"}}}`,
	} {
		tmpl, err := cfntemplate.Parse([]byte(body))
		if err == nil {
			_, err = cfntemplate.NewPlan(tmpl, cfntemplate.Options{})
		}
		if err == nil {
			t.Errorf("%s: accepted", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}
