package main

import (
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

// TestEmailBridge: the SES side of the email bridge. The domain identity
// signs with Easy DKIM and sends with the configuration set whose bounces
// and complaints reach the email-events function through SNS; the receipt
// rule stores mail for the domain in the bucket under the inbound prefix
// and then invokes inbound-email. Without a hosted zone the DKIM and MX
// records are outputs; with one, the stack publishes them.
func TestEmailBridge(t *testing.T) {
	dev, prod := stacks(t)
	p := dev.settings.Prefix
	inboundID, _ := dev.byRole(t, RoleInboundEmailFn)
	eventsID, _ := dev.byRole(t, RoleEmailEventsFn)
	bucketID := ""
	for id, b := range dev.resources("AWS::S3::Bucket") {
		if dig(b, "Metadata", "agentry:role") == "bodies-bucket" {
			bucketID = id
		}
	}
	if bucketID == "" {
		t.Fatal("no bodies bucket")
	}
	must(t, "identity", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::SES::EmailIdentity"), &map[string]any{
			"EmailIdentity": dev.settings.Domain, "ConfigurationSetAttributes": map[string]any{"ConfigurationSetName": assertions.Match_AnyValue()},
		})
	})
	must(t, "configuration set", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::SES::ConfigurationSet"), &map[string]any{"Name": p + "-email"})
	})
	must(t, "bounces and complaints to SNS", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::SES::ConfigurationSetEventDestination"), &map[string]any{
			"ConfigurationSetName": assertions.Match_AnyValue(),
			"EventDestination": assertions.Match_ObjectLike(&map[string]any{
				"Enabled": true, "MatchingEventTypes": []any{"bounce", "complaint"},
				"SnsDestination": map[string]any{"TopicARN": assertions.Match_AnyValue()},
			}),
		})
	})
	must(t, "email-events hears the topic", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), &map[string]any{
			"Protocol": "lambda", "Endpoint": map[string]any{"Fn::GetAtt": []any{eventsID, "Arn"}},
		})
	})
	must(t, "receipt rule: S3, then inbound-email", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::SES::ReceiptRule"), &map[string]any{
			"Rule": assertions.Match_ObjectLike(&map[string]any{
				"Enabled": true, "ScanEnabled": true, "TlsPolicy": "Require", "Recipients": []any{dev.settings.Domain},
				"Actions": []any{
					map[string]any{"S3Action": map[string]any{"BucketName": map[string]any{"Ref": bucketID}, "ObjectKeyPrefix": InboundEmailPrefix}},
					map[string]any{"LambdaAction": map[string]any{"FunctionArn": map[string]any{"Fn::GetAtt": []any{inboundID, "Arn"}}, "InvocationType": "Event"}},
				},
			}),
		})
	})
	must(t, "SES may invoke inbound-email", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::Lambda::Permission"), &map[string]any{
			"Action": "lambda:InvokeFunction", "Principal": "ses.amazonaws.com",
			"FunctionName": map[string]any{"Fn::GetAtt": []any{inboundID, "Arn"}},
		})
	})
	must(t, "SES may store in the bucket, under the prefix only", func() {
		dev.tmpl.HasResourceProperties(jsii.String("AWS::S3::BucketPolicy"), &map[string]any{
			"PolicyDocument": assertions.Match_ObjectLike(&map[string]any{
				"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
					"Action": "s3:PutObject", "Principal": map[string]any{"Service": "ses.amazonaws.com"},
				})}),
			}),
		})
	})

	outputs := func(s *synthesized) string {
		var keys []string
		for k := range s.json["Outputs"].(map[string]any) {
			keys = append(keys, k)
		}
		return strings.Join(keys, " ")
	}
	for _, o := range []string{"EmailDkimRecord1", "EmailDkimRecord2", "EmailDkimRecord3", "EmailMxRecord", "EmailReceiptRuleSet"} {
		if !strings.Contains(outputs(dev), o) {
			t.Errorf("dev (no hosted zone) lacks output %s", o)
		}
	}
	if strings.Contains(outputs(prod), "EmailDkimRecord") {
		t.Error("prod publishes its DKIM records; it needs no output for them")
	}
	cnames, mx := 0, 0
	for _, r := range prod.resources("AWS::Route53::RecordSet") {
		switch dig(r, "Properties", "Type") {
		case "CNAME":
			cnames++
		case "MX":
			mx++
		}
	}
	if cnames != 3 || mx != 1 {
		t.Errorf("prod publishes %d CNAME (DKIM) and %d MX records, want 3 and 1", cnames, mx)
	}
}
