package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsroute53"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsses"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssesactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/jsii-runtime-go"
)

// The email bridge's functions (docs/email-bridge.md "Operating the
// bridge"): inbound-email takes what SES receives for the domain (the
// receipt rule stores it in the bucket first), email-events hears of
// bounces and complaints of what the deliver function sent through SES.
const (
	RoleInboundEmailFn = "inbound-email-function"
	RoleEmailEventsFn  = "email-events-function"

	// InboundEmailTimeoutSeconds: reading one email from S3 and one
	// accept (a few DynamoDB writes, maybe a workflow step).
	InboundEmailTimeoutSeconds = 30
	// EmailEventsTimeoutSeconds: one status update and one report each.
	EmailEventsTimeoutSeconds = 10

	// InboundEmailPrefix is where the receipt rule stores received email
	// in the bodies bucket (AGENTRY_SES_INBOUND_PREFIX of inbound-email).
	InboundEmailPrefix = "inbound-email/"
	// InboundMXPriority is the preference of the MX record the stack
	// publishes with a hosted zone.
	InboundMXPriority = 10
)

// configurationSetName is the SES configuration set the deliver function
// sends with (AGENTRY_SES_CONFIGURATION_SET).
func configurationSetName(r *resources) string { return r.names.Prefix + "-email" }

// newEmail: the SES side of the email bridge. Outbound, a domain identity
// with Easy DKIM (its CNAMEs published in the hosted zone when there is
// one, else given as outputs) and a configuration set whose bounces and
// complaints go to a topic the email-events function hears. Inbound, a
// receipt rule set that stores mail for the domain in the bucket and
// then invokes inbound-email; a rule set must be made the active one by
// the operator (one per account and region), which CloudFormation cannot.
func newEmail(stack awscdk.Stack, r *resources) {
	s := r.settings
	topic := awssns.NewTopic(stack, jsii.String("EmailEventsTopic"), &awssns.TopicProps{
		TopicName:   jsii.String(r.names.Prefix + "-email-events"),
		DisplayName: jsii.String("Agentry " + s.Stage + " SES bounces and complaints"),
		EnforceSSL:  jsii.Bool(true),
	})
	cs := awsses.NewConfigurationSet(stack, jsii.String("EmailConfigurationSet"), &awsses.ConfigurationSetProps{
		ConfigurationSetName: jsii.String(configurationSetName(r)),
	})
	cs.AddEventDestination(jsii.String("BouncesAndComplaints"), &awsses.ConfigurationSetEventDestinationOptions{
		Destination: awsses.EventDestination_SnsTopic(topic),
		Events:      &[]awsses.EmailSendingEvent{awsses.EmailSendingEvent_BOUNCE, awsses.EmailSendingEvent_COMPLAINT},
	})
	identity := awsses.NewEmailIdentity(stack, jsii.String("EmailIdentity"), &awsses.EmailIdentityProps{
		Identity:         awsses.Identity_Domain(jsii.String(s.Domain)),
		ConfigurationSet: cs,
	})

	inbound, events, deliver := r.functions["inbound-email"], r.functions["email-events"], r.functions["deliver"]
	deliver.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:     jsii.String("SendBridgedEmail"),
		Actions: jsii.Strings("ses:SendEmail", "ses:SendRawEmail"),
		Resources: &[]*string{
			stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ses"), Resource: jsii.String("identity"), ResourceName: jsii.String(s.Domain)}),
			stack.FormatArn(&awscdk.ArnComponents{Service: jsii.String("ses"), Resource: jsii.String("configuration-set"), ResourceName: jsii.String(configurationSetName(r))}),
		},
	}))
	inbound.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("ReceivedEmail"),
		Actions:   jsii.Strings("s3:GetObject"),
		Resources: &[]*string{r.bucket.ArnForObjects(jsii.String(InboundEmailPrefix + "*"))},
	}))
	events.AddEventSource(awslambdaeventsources.NewSnsEventSource(topic, nil))

	awsses.NewReceiptRuleSet(stack, jsii.String("InboundEmailRules"), &awsses.ReceiptRuleSetProps{
		ReceiptRuleSetName: jsii.String(r.names.Prefix + "-inbound"),
		Rules: &[]*awsses.ReceiptRuleOptions{{
			ReceiptRuleName: jsii.String(r.names.Prefix + "-to-amtp"),
			Recipients:      jsii.Strings(s.Domain),
			// Spam and virus verdicts for the function to act on.
			ScanEnabled: jsii.Bool(true),
			TlsPolicy:   awsses.TlsPolicy_REQUIRE,
			Actions: &[]awsses.IReceiptRuleAction{
				awssesactions.NewS3(&awssesactions.S3Props{Bucket: r.bucket, ObjectKeyPrefix: jsii.String(InboundEmailPrefix)}),
				awssesactions.NewLambda(&awssesactions.LambdaProps{Function: inbound, InvocationType: awssesactions.LambdaInvocationType_EVENT}),
			},
		}},
	})

	out := func(id, desc string, v *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Value: v, Description: jsii.String(desc)})
	}
	mx := awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("inbound-smtp."), awscdk.Aws_REGION(), jsii.String(".amazonaws.com")})
	if s.HostedZone() {
		zone := hostedZone(stack, r)
		for i, rec := range *identity.DkimRecords() {
			awsroute53.NewCnameRecord(stack, jsii.String("EmailDkim"+string(rune('1'+i))), &awsroute53.CnameRecordProps{
				Zone: zone, RecordName: rec.Name, DomainName: rec.Value, Ttl: awscdk.Duration_Minutes(jsii.Number(30)),
			})
		}
		awsroute53.NewMxRecord(stack, jsii.String("EmailMx"), &awsroute53.MxRecordProps{
			Zone: zone, RecordName: jsii.String(s.Domain + "."),
			Values: &[]*awsroute53.MxRecordValue{{HostName: mx, Priority: jsii.Number(InboundMXPriority)}},
		})
	} else {
		for i, rec := range *identity.DkimRecords() {
			n := string(rune('1' + i))
			out("EmailDkimRecord"+n, "Publish this CNAME for SES DKIM (name → value)",
				awscdk.Fn_Join(jsii.String(" CNAME "), &[]*string{rec.Name, rec.Value}))
		}
		out("EmailMxRecord", "Publish this MX record so that email for the domain reaches SES",
			awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String(s.Domain + ". MX 10 "), mx}))
	}
	out("EmailReceiptRuleSet", "Activate this SES receipt rule set (aws ses set-active-receipt-rule-set --rule-set-name …)",
		jsii.String(r.names.Prefix+"-inbound"))
	out("EmailEventsTopicArn", "SNS topic of SES bounces and complaints", topic.TopicArn())
}

// emailFunctionsGrant gives the email functions what every accepting
// function needs: the table, the queue, message bodies, the workflow
// machine (a reply by email moves a workflow; a bounce reports).
func emailFunctionsGrant(r *resources, s3rw func(awslambda.Function)) {
	for _, name := range []string{"inbound-email", "email-events"} {
		fn := r.functions[name]
		r.table.GrantReadWriteData(fn)
		r.queue.GrantSendMessages(fn)
		s3rw(fn)
		r.machine.GrantStartExecution(fn)
		r.machine.GrantTaskResponse(fn)
	}
}
