package main

import (
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2authorizers"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsapigatewayv2integrations"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscertificatemanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambdaeventsources"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsroute53"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsroute53targets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssecretsmanager"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssqs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/agentry/agentry/internal/adapter/awsres"
	"github.com/agentry/agentry/internal/kit/cfntemplate"
	"github.com/agentry/agentry/internal/usecase/gateway"
)

// Function sizing and event-source settings. template.yaml repeats them
// (a test keeps the two equal); the deliver timeout comes from awsres
// because the queue's visibility timeout is derived from it.
const (
	// APITimeoutSeconds stays under API Gateway's 30 s integration limit
	// so that a slow request ends as our error, not the gateway's.
	APITimeoutSeconds = 29
	// DeadletterTimeoutSeconds: settling a poison task is a few DynamoDB
	// writes and one queue send. 5 s keeps the DLQ's default 30 s
	// visibility timeout at the 6× AWS recommends for SQS event sources
	// without a DLQ setting of our own in awsres.
	DeadletterTimeoutSeconds = 5
	// DLQVisibilityTimeoutSeconds is SQS's default, which the DLQ keeps.
	DLQVisibilityTimeoutSeconds = 30

	DeliverBatchSize = 10
	// DeliverMaxConcurrency caps parallel deliveries and the DynamoDB load
	// a drained backlog puts on the table: 100 invocations of 10 records
	// at about 100 ms are the 10,000 deliveries a second docs/scaling.md
	// sizes the stack for, about 3 RRU + 1 WRU each (make bench's heat
	// scenario), under the table's 40,000-unit quotas by themselves.
	DeliverMaxConcurrency = 100
	DeadletterBatchSize   = 10
	// Dead letters are rare; two pollers (the minimum) are plenty.
	DeadletterMaxConcurrency = 2
)

// functionSpec is one Lambda function of the stack.
type functionSpec struct {
	Name        string // functions/<Name>, <LambdaDir>/<Name>/bootstrap, <prefix>-<Name>
	Role        string // agentry:role metadata
	MemoryMB    int
	TimeoutSecs int
	Description string
}

var functionSpecs = []functionSpec{
	{"api", cfntemplate.RoleAPIFunction, 512, APITimeoutSeconds, "Agentry REST API (API Gateway HTTP API, payload v2)"},
	{"deliver", cfntemplate.RoleDeliverFunction, 512, awsres.DeliverTimeoutSeconds, "Agentry delivery worker (SQS delivery queue)"},
	{"deadletter", cfntemplate.RoleDeadletterFn, 256, DeadletterTimeoutSeconds, "Agentry dead-letter handler (SQS delivery DLQ)"},
	{"inbound-email", RoleInboundEmailFn, 512, InboundEmailTimeoutSeconds, "Agentry inbound email (SES receipt rule)"},
	{"email-events", RoleEmailEventsFn, 256, EmailEventsTimeoutSeconds, "Agentry SES bounces and complaints (SNS)"},
}

// AgentryStackProps configure NewAgentryStack.
type AgentryStackProps struct {
	awscdk.StackProps
	Settings Settings
}

// resources are the constructs later parts of the stack (grants,
// observability, and the extension points below) work with.
type resources struct {
	settings  Settings
	names     awsres.Names
	table     awsdynamodb.Table
	queue     awssqs.Queue
	dlq       awssqs.Queue
	bucket    awss3.Bucket
	adminKey  awssecretsmanager.Secret
	signKey   awssecretsmanager.Secret
	machine   awsstepfunctions.StateMachine
	functions map[string]awslambda.Function
	api       awsapigatewayv2.HttpApi
	publicURL *string
	zone      awsroute53.IHostedZone     // with a hosted zone
	domain    awsapigatewayv2.DomainName // with a custom domain
	// peerDomain is the mutual-TLS host for other gateways (settings MTLS).
	peerDomain awsapigatewayv2.DomainName
}

// NewAgentryStack defines every AWS resource of one Agentry deployment.
// Settings must come from SettingsFromContext (or withDefaults).
func NewAgentryStack(scope constructs.Construct, id string, props *AgentryStackProps) awscdk.Stack {
	s := props.Settings
	if err := s.checkLambdaDir(); err != nil {
		panic(err)
	}
	sp := props.StackProps
	if sp.Description == nil {
		sp.Description = jsii.String(fmt.Sprintf("Agentry AMTP gateway for %s (stage %s)", s.Domain, s.Stage))
	}
	if s.Production() {
		sp.TerminationProtection = jsii.Bool(true)
	}
	stack := awscdk.NewStack(scope, jsii.String(id), &sp)
	// Cost allocation by stage. Not on dashboards: CDK would emit Tags
	// there, which CloudFormation's published schema (and so cfn-lint)
	// does not accept for AWS::CloudWatch::Dashboard.
	awscdk.Tags_Of(stack).Add(jsii.String("agentry:stage"), jsii.String(s.Stage), &awscdk.TagProps{
		ExcludeResourceTypes: jsii.Strings("AWS::CloudWatch::Dashboard"),
	})
	// The prefix is recorded in the template so that internal/kit/cfntemplate
	// can rename every resource for a test (see its package comment).
	stack.TemplateOptions().SetMetadata(&map[string]interface{}{
		cfntemplate.MetaPrefix: s.Prefix,
		cfntemplate.MetaStage:  s.Stage,
	})

	names, err := awsres.NamesFor(s.Prefix)
	if err != nil {
		panic(err)
	}
	r := &resources{settings: s, names: names, functions: map[string]awslambda.Function{}}
	newData(stack, r)
	newSecrets(stack, r)
	newHTTPAPI(stack, r)
	newCoordination(stack, r)
	newFunctions(stack, r)
	newAPI(stack, r)
	newEmail(stack, r)
	newObservability(stack, r)
	newScale(stack, r)
	newOutputs(stack, r)
	quietRedundantDependsOn(stack)
	return stack
}

// quietRedundantDependsOn silences cfn-lint's W3005 ("dependency
// already enforced") on the resources where CDK's L2 constructs write a
// DependsOn next to a Ref/GetAtt to the same resource and offer no way to
// leave it out: Lambda functions (on their role; the dev bucket's
// auto-delete provider too), the custom domain's API mapping and the
// state machine (on its role). Only those resources, only that check.
func quietRedundantDependsOn(stack awscdk.Stack) {
	ignore := map[string]interface{}{"config": map[string]interface{}{"ignore_checks": []string{"W3005"}}}
	for _, c := range *stack.Node().FindAll(constructs.ConstructOrder_PREORDER) {
		res, ok := c.(awscdk.CfnResource)
		if !ok {
			continue
		}
		switch *res.CfnResourceType() {
		case "AWS::Lambda::Function", "AWS::ApiGatewayV2::ApiMapping", "AWS::StepFunctions::StateMachine":
			res.AddMetadata(jsii.String("cfn-lint"), ignore)
		}
	}
}

// removal is what happens to stateful resources when the stack goes:
// production keeps its data, other stages clean up after themselves.
func removal(s Settings) awscdk.RemovalPolicy {
	if s.Production() {
		return awscdk.RemovalPolicy_RETAIN
	}
	return awscdk.RemovalPolicy_DESTROY
}

// tagRole marks the CloudFormation resource behind a construct with its
// role, for cfntemplate and the consistency tests.
func tagRole(c constructs.IConstruct, role string) {
	c.Node().DefaultChild().(awscdk.CfnResource).AddMetadata(jsii.String(cfntemplate.MetaRole), role)
}

func seconds(n int) awscdk.Duration { return awscdk.Duration_Seconds(jsii.Number(float64(n))) }

// newData: the table, the queues and the bucket, shaped by awsres (the
// same values `agentry serve` with AGENTRY_AWS_BOOTSTRAP=1 uses).
func newData(stack awscdk.Stack, r *resources) {
	s := r.settings
	str := awsdynamodb.AttributeType_STRING
	tp := &awsdynamodb.TableProps{
		TableName:           jsii.String(r.names.Table),
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String(awsres.AttrPK), Type: str},
		SortKey:             &awsdynamodb.Attribute{Name: jsii.String(awsres.AttrSK), Type: str},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String(awsres.AttrTTL),
		// Names the keys DynamoDB throttles (scale.go).
		ContributorInsightsSpecification: hotKeyInsights(),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		RemovalPolicy: removal(s),
	}
	if s.Production() {
		tp.DeletionProtection = jsii.Bool(true)
	}
	r.table = awsdynamodb.NewTable(stack, jsii.String("Table"), tp)
	for _, g := range [][3]string{{awsres.GSI1, awsres.AttrGSI1PK, awsres.AttrGSI1SK}, {awsres.GSI2, awsres.AttrGSI2PK, awsres.AttrGSI2SK}} {
		r.table.AddGlobalSecondaryIndex(&awsdynamodb.GlobalSecondaryIndexProps{
			IndexName:                        jsii.String(g[0]),
			PartitionKey:                     &awsdynamodb.Attribute{Name: jsii.String(g[1]), Type: str},
			SortKey:                          &awsdynamodb.Attribute{Name: jsii.String(g[2]), Type: str},
			ProjectionType:                   awsdynamodb.ProjectionType(awsres.GSIProjection),
			ContributorInsightsSpecification: hotKeyInsights(),
		})
	}
	tagRole(r.table, cfntemplate.RoleTable)

	// Queue encryption is left to SQS's default (SSE-SQS for every new
	// queue) so the attributes stay exactly awsres's.
	r.dlq = awssqs.NewQueue(stack, jsii.String("DeadLetterQueue"), &awssqs.QueueProps{
		QueueName:       jsii.String(r.names.DeadLetter),
		RetentionPeriod: seconds(awsres.DLQRetentionSeconds),
		EnforceSSL:      jsii.Bool(true),
	})
	tagRole(r.dlq, cfntemplate.RoleDeadLetterQueue)
	r.queue = awssqs.NewQueue(stack, jsii.String("DeliveryQueue"), &awssqs.QueueProps{
		QueueName:              jsii.String(r.names.DeliveryQueue),
		VisibilityTimeout:      seconds(awsres.VisibilityTimeoutSeconds),
		RetentionPeriod:        seconds(awsres.MessageRetentionSeconds),
		ReceiveMessageWaitTime: seconds(awsres.ReceiveWaitSeconds),
		DeadLetterQueue:        &awssqs.DeadLetterQueue{Queue: r.dlq, MaxReceiveCount: jsii.Number(awsres.MaxReceiveCount)},
		EnforceSSL:             jsii.Bool(true),
	})
	tagRole(r.queue, cfntemplate.RoleDeliveryQueue)

	// The bucket gets a CloudFormation-generated name: bucket names are
	// global, and a fixed one would collide across accounts. Functions
	// learn it from AGENTRY_BUCKET.
	bp := &awss3.BucketProps{
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Id:                                  jsii.String("expire-bodies"),
			Expiration:                          awscdk.Duration_Days(jsii.Number(awsres.BodyLifecycleDays)),
			AbortIncompleteMultipartUploadAfter: awscdk.Duration_Days(jsii.Number(1)),
		}},
		RemovalPolicy: removal(s),
	}
	if !s.Production() {
		// Bodies are copies with a 30-day life; in a dev stage they
		// should not block `make destroy`.
		bp.AutoDeleteObjects = jsii.Bool(true)
	}
	r.bucket = awss3.NewBucket(stack, jsii.String("BodiesBucket"), bp)
	tagRole(r.bucket, cfntemplate.RoleBodiesBucket)
}

// newSecrets: the admin key lives in Secrets Manager, generated at
// deploy time, never in the template, an environment variable or a log.
// Functions get its ARN and read it on first use.
func newSecrets(stack awscdk.Stack, r *resources) {
	r.adminKey = awssecretsmanager.NewSecret(stack, jsii.String("AdminKey"), &awssecretsmanager.SecretProps{
		SecretName:  jsii.String(r.names.Prefix + "/admin-key"),
		Description: jsii.String("Agentry admin bearer key for /v1/admin/* (rotate: put a new value, then wait for new Lambda instances)"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength:     jsii.Number(48),
			ExcludePunctuation: jsii.Bool(true), // safe in an Authorization header and a shell
			IncludeSpace:       jsii.Bool(false),
		},
		RemovalPolicy: removal(r.settings),
	})
	tagRole(r.adminKey, cfntemplate.RoleAdminKeySecret)
	// The message-signing key: its value is a PKCS#8 PEM the operator
	// makes with `agentry keygen` and puts here (README "Deploy to AWS");
	// the generated placeholder is not a key, so forwards to other domains
	// wait in retry, with the reason in their status, until it is set.
	r.signKey = awssecretsmanager.NewSecret(stack, jsii.String("SigningKey"), &awssecretsmanager.SecretProps{
		SecretName:  jsii.String(r.names.Prefix + "/signing-key"),
		Description: jsii.String("Agentry message-signing key (PKCS#8 PEM from `agentry keygen`; publish its _amtpkey TXT record)"),
		GenerateSecretString: &awssecretsmanager.SecretStringGenerator{
			PasswordLength:     jsii.Number(32),
			ExcludePunctuation: jsii.Bool(true),
			IncludeSpace:       jsii.Bool(false),
		},
		RemovalPolicy: removal(r.settings),
	})
	tagRole(r.signKey, cfntemplate.RoleSigningKeySecret)
}

// EnvVars are the AGENTRY_* variables each function gets (names only;
// template.yaml must give the same names, a test checks).
func EnvVars(function string) []string {
	v := []string{
		"AGENTRY_DOMAIN", "AGENTRY_RESOURCE_PREFIX", "AGENTRY_TABLE", "AGENTRY_QUEUE_URL", "AGENTRY_DLQ_URL",
		"AGENTRY_BUCKET", "AGENTRY_PUBLIC_URL", "AGENTRY_MAX_MESSAGE_BYTES", "AGENTRY_LOG_LEVEL",
		// Every function may advance a workflow: api (replies), deliver
		// (starts, steps, timeouts), deadletter (participants that
		// cannot be reached).
		"AGENTRY_STATE_MACHINE_ARN",
	}
	switch function {
	case "api":
		// Only the API serves /v1/admin, and only it accepts messages (to
		// which the access policy applies).
		v = append(v, "AGENTRY_ADMIN_KEY_SECRET_ARN", "AGENTRY_POLICY",
			// How to read what API Gateway verified: OAuth claims and
			// peers' client certificates ("" / "0" when off).
			"AGENTRY_OAUTH_ISSUER", "AGENTRY_OAUTH_AUDIENCE", "AGENTRY_REQUIRE_PEER_MTLS")
	case "deliver":
		v = append(v, "AGENTRY_SIGNING_KEY_SECRET_ARN", // only the worker forwards (and signs)
			"AGENTRY_SES_CONFIGURATION_SET") // and sends bridged email through SES
	case "inbound-email":
		v = append(v, "AGENTRY_SES_INBOUND_PREFIX")
	}
	return v
}

// newHTTPAPI creates the HTTP API without routes, before the functions,
// so that they can be told its URL (AGENTRY_PUBLIC_URL); newAPI adds the
// route to the api function afterwards. In that order CloudFormation sees
// no dependency cycle (function → API, route → integration → function).
func newHTTPAPI(stack awscdk.Stack, r *resources) {
	s := r.settings
	apiProps := &awsapigatewayv2.HttpApiProps{
		ApiName:     jsii.String(r.names.Prefix + "-api"),
		Description: jsii.String("Agentry AMTP gateway " + s.Domain),
	}
	if s.CustomDomain() {
		r.domain = newDomainName(stack, r)
		apiProps.DefaultDomainMapping = &awsapigatewayv2.DomainMappingOptions{DomainName: r.domain}
	}
	r.api = awsapigatewayv2.NewHttpApi(stack, jsii.String("HttpApi"), apiProps)
	r.publicURL = r.api.ApiEndpoint()
	if s.CustomDomain() {
		r.publicURL = jsii.String("https://" + s.APIHost)
	}
	if s.MTLS() {
		r.peerDomain = newPeerDomain(stack, r)
		awsapigatewayv2.NewApiMapping(stack, jsii.String("PeerMapping"), &awsapigatewayv2.ApiMappingProps{Api: r.api, DomainName: r.peerDomain})
		// Other gateways find us through the TXT record: it names the
		// host that asks for their certificates.
		r.publicURL = jsii.String("https://" + s.PeerHost)
	}
}

// newPeerDomain is the host other gateways deliver to, with API Gateway's
// mutual TLS against the operator's truststore.
func newPeerDomain(stack awscdk.Stack, r *resources) awsapigatewayv2.DomainName {
	s := r.settings
	var cert awscertificatemanager.ICertificate
	if s.PeerCertificateARN != "" {
		cert = awscertificatemanager.Certificate_FromCertificateArn(stack, jsii.String("PeerCertificate"), jsii.String(s.PeerCertificateARN))
	} else {
		cert = awscertificatemanager.NewCertificate(stack, jsii.String("PeerCertificate"), &awscertificatemanager.CertificateProps{
			DomainName: jsii.String(s.PeerHost),
			Validation: awscertificatemanager.CertificateValidation_FromDns(hostedZone(stack, r)),
		})
	}
	bucket, key, _ := s.truststore()
	mtls := &awsapigatewayv2.MTLSConfig{
		Bucket: awss3.Bucket_FromBucketName(stack, jsii.String("Truststore"), jsii.String(bucket)),
		Key:    jsii.String(key),
	}
	if s.MTLSTruststoreVersion != "" {
		mtls.Version = jsii.String(s.MTLSTruststoreVersion)
	}
	return awsapigatewayv2.NewDomainName(stack, jsii.String("PeerDomain"), &awsapigatewayv2.DomainNameProps{
		DomainName: jsii.String(s.PeerHost), Certificate: cert, Mtls: mtls,
	})
}

func newFunctions(stack awscdk.Stack, r *resources) {
	s := r.settings
	retention := awslogs.RetentionDays_ONE_MONTH
	if s.Production() {
		retention = awslogs.RetentionDays_THREE_MONTHS
	}
	for _, f := range functionSpecs {
		name := r.names.Prefix + "-" + f.Name
		env := map[string]*string{
			"AGENTRY_DOMAIN":            jsii.String(s.Domain),
			"AGENTRY_RESOURCE_PREFIX":   jsii.String(r.names.Prefix),
			"AGENTRY_TABLE":             r.table.TableName(),
			"AGENTRY_QUEUE_URL":         r.queue.QueueUrl(),
			"AGENTRY_DLQ_URL":           r.dlq.QueueUrl(),
			"AGENTRY_BUCKET":            r.bucket.BucketName(),
			"AGENTRY_PUBLIC_URL":        r.publicURL,
			"AGENTRY_MAX_MESSAGE_BYTES": jsii.String(strconv.FormatInt(s.MaxMessageBytes, 10)),
			"AGENTRY_LOG_LEVEL":         jsii.String(s.LogLevel),
			"AGENTRY_STATE_MACHINE_ARN": r.machine.StateMachineArn(),
		}
		switch f.Name {
		case "api":
			env["AGENTRY_ADMIN_KEY_SECRET_ARN"] = r.adminKey.SecretArn()
			env["AGENTRY_POLICY"] = jsii.String(s.Policy) // "" = no policy
			env["AGENTRY_OAUTH_ISSUER"] = jsii.String(s.OAuthIssuer)
			env["AGENTRY_OAUTH_AUDIENCE"] = jsii.String(s.OAuthAudience)
			env["AGENTRY_REQUIRE_PEER_MTLS"] = jsii.String(map[bool]string{true: "1", false: "0"}[s.MTLS()])
		case "deliver":
			env["AGENTRY_SIGNING_KEY_SECRET_ARN"] = r.signKey.SecretArn()
			env["AGENTRY_SES_CONFIGURATION_SET"] = jsii.String(configurationSetName(r))
		case "inbound-email":
			env["AGENTRY_SES_INBOUND_PREFIX"] = jsii.String(InboundEmailPrefix)
		}
		// An explicit log group: retention and removal follow the stage
		// instead of Lambda's never-expiring default group.
		logs := awslogs.NewLogGroup(stack, jsii.String(f.Name+"Logs"), &awslogs.LogGroupProps{
			LogGroupName:  jsii.String("/aws/lambda/" + name),
			Retention:     retention,
			RemovalPolicy: removal(s),
		})
		fn := awslambda.NewFunction(stack, jsii.String(f.Name+"Function"), &awslambda.FunctionProps{
			FunctionName: jsii.String(name),
			Description:  jsii.String(f.Description),
			Runtime:      awslambda.Runtime_PROVIDED_AL2023(),
			Architecture: awslambda.Architecture_ARM_64(),
			Handler:      jsii.String("bootstrap"),
			Code:         awslambda.Code_FromAsset(jsii.String(filepath.Join(s.LambdaDir, f.Name)), nil),
			MemorySize:   jsii.Number(float64(f.MemoryMB)),
			Timeout:      seconds(f.TimeoutSecs),
			Tracing:      awslambda.Tracing_ACTIVE,
			Environment:  &env,
			LogGroup:     logs,
		})
		tagRole(fn, f.Role)
		r.functions[f.Name] = fn
	}
	grant(r)
}

// grant gives each function what it calls and nothing else. CDK's grant
// methods list explicit actions on the resource's own ARNs; S3 is
// spelled out because Bucket.grantReadWrite uses wildcard actions
// (s3:GetObject*, s3:List*, s3:DeleteObject*) the functions do not need —
// bodies are written once, read, and expired by the lifecycle rule.
func grant(r *resources) {
	api, deliver, dead := r.functions["api"], r.functions["deliver"], r.functions["deadletter"]
	objects := r.bucket.ArnForObjects(jsii.String("*"))
	s3rw := func(fn awslambda.Function) {
		fn.AddToRolePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid:       jsii.String("MessageBodies"),
			Actions:   jsii.Strings("s3:GetObject", "s3:PutObject"),
			Resources: &[]*string{objects},
		}))
	}
	for _, fn := range []awslambda.Function{api, deliver, dead} {
		// Every function stores and reads messages, and enqueues tasks
		// (accept, retries, failure reports all go through the queue).
		r.table.GrantReadWriteData(fn)
		r.queue.GrantSendMessages(fn)
		s3rw(fn)
		// Start a workflow's execution, complete its waiting steps: on
		// the coordination machine only.
		r.machine.GrantStartExecution(fn)
		r.machine.GrantTaskResponse(fn)
	}
	emailFunctionsGrant(r, s3rw)
	// The worker moves tasks it gives up on to the DLQ itself, and so
	// does api when the Immediate Path's attempt fails for good.
	r.dlq.GrantSendMessages(deliver)
	r.dlq.GrantSendMessages(api)
	r.adminKey.GrantRead(api, nil)
	r.signKey.GrantRead(deliver, nil)

	// The event source mappings grant receive/delete/visibility on their
	// own queue only.
	deliver.AddEventSource(awslambdaeventsources.NewSqsEventSource(r.queue, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(DeliverBatchSize),
		MaxConcurrency:          jsii.Number(DeliverMaxConcurrency),
		ReportBatchItemFailures: jsii.Bool(true),
	}))
	dead.AddEventSource(awslambdaeventsources.NewSqsEventSource(r.dlq, &awslambdaeventsources.SqsEventSourceProps{
		BatchSize:               jsii.Number(DeadletterBatchSize),
		MaxConcurrency:          jsii.Number(DeadletterMaxConcurrency),
		ReportBatchItemFailures: jsii.Bool(true),
	}))
}

// newDomainName: the API's own host name with its certificate — an
// existing one (certificateArn), or one validated through the zone.
func newDomainName(stack awscdk.Stack, r *resources) awsapigatewayv2.DomainName {
	s := r.settings
	var cert awscertificatemanager.ICertificate
	if s.CertificateARN != "" {
		cert = awscertificatemanager.Certificate_FromCertificateArn(stack, jsii.String("Certificate"), jsii.String(s.CertificateARN))
	} else {
		cert = awscertificatemanager.NewCertificate(stack, jsii.String("Certificate"), &awscertificatemanager.CertificateProps{
			DomainName: jsii.String(s.APIHost),
			Validation: awscertificatemanager.CertificateValidation_FromDns(hostedZone(stack, r)),
		})
	}
	return awsapigatewayv2.NewDomainName(stack, jsii.String("ApiDomain"), &awsapigatewayv2.DomainNameProps{
		DomainName:  jsii.String(s.APIHost),
		Certificate: cert,
	})
}

// hostedZone imports the zone by ID and name: no lookup, so synth stays
// offline and needs no credentials.
func hostedZone(stack awscdk.Stack, r *resources) awsroute53.IHostedZone {
	if r.zone == nil {
		r.zone = awsroute53.HostedZone_FromHostedZoneAttributes(stack, jsii.String("Zone"), &awsroute53.HostedZoneAttributes{
			HostedZoneId: jsii.String(r.settings.HostedZoneID),
			ZoneName:     jsii.String(r.settings.HostedZoneName),
		})
	}
	return r.zone
}

// TXTValue is the _amtp record this deployment should publish.
func TXTValue(publicURL *string, s Settings) *string {
	return jsii.String(gateway.TXTRecord(*publicURL, gateway.AuthMethodsFor(s.OAuth(), s.MTLS()), s.MaxMessageBytes))
}

func newAPI(stack awscdk.Stack, r *resources) {
	s := r.settings
	// One $default route: internal/adapter/httpapi does all the routing, and
	// unlike a /{proxy+} route it also receives GET /.
	integration := awsapigatewayv2integrations.NewHttpLambdaIntegration(jsii.String("ApiIntegration"), r.functions["api"],
		&awsapigatewayv2integrations.HttpLambdaIntegrationProps{PayloadFormatVersion: awsapigatewayv2.PayloadFormatVersion_VERSION_2_0()})
	awsapigatewayv2.NewHttpRoute(stack, jsii.String("DefaultRoute"), &awsapigatewayv2.HttpRouteProps{
		HttpApi:     r.api,
		RouteKey:    awsapigatewayv2.HttpRouteKey_DEFAULT(),
		Integration: integration,
	})
	if s.OAuth() {
		// The JWT authorizer turns away every /oauth request without a
		// valid token (issuer, audience, signature, expiry) before the
		// function runs; the function maps the claims to an agent.
		awsapigatewayv2.NewHttpRoute(stack, jsii.String("OAuthRoute"), &awsapigatewayv2.HttpRouteProps{
			HttpApi:     r.api,
			RouteKey:    awsapigatewayv2.HttpRouteKey_With(jsii.String("/oauth/{proxy+}"), awsapigatewayv2.HttpMethod_ANY),
			Integration: integration,
			Authorizer: awsapigatewayv2authorizers.NewHttpJwtAuthorizer(jsii.String("OAuth"), jsii.String(s.OAuthIssuer),
				&awsapigatewayv2authorizers.HttpJwtAuthorizerProps{
					AuthorizerName: jsii.String(r.names.Prefix + "-oauth"),
					JwtAudience:    &[]*string{jsii.String(s.OAuthAudience)},
				}),
		})
	}
	// Access logs of the default stage: who called what and how it
	// ended, including requests API Gateway rejects before the function.
	accessLogs := awslogs.NewLogGroup(stack, jsii.String("ApiAccessLogs"), &awslogs.LogGroupProps{
		Retention:     awslogs.RetentionDays_ONE_MONTH,
		RemovalPolicy: removal(s),
	})
	stage := r.api.DefaultStage().Node().DefaultChild().(awsapigatewayv2.CfnStage)
	stage.SetAccessLogSettings(&awsapigatewayv2.CfnStage_AccessLogSettingsProperty{
		DestinationArn: accessLogs.LogGroupArn(),
		Format: jsii.String(`{"requestId":"$context.requestId","ip":"$context.identity.sourceIp","requestTime":"$context.requestTime",` +
			`"method":"$context.httpMethod","path":"$context.path","status":"$context.status","bytes":"$context.responseLength",` +
			`"latencyMs":"$context.responseLatency","integrationError":"$context.integrationErrorMessage"}`),
	})

	if s.HostedZone() {
		zone := hostedZone(stack, r)
		domain := r.domain
		awsroute53.NewARecord(stack, jsii.String("ApiAlias"), &awsroute53.ARecordProps{
			Zone:       zone,
			RecordName: jsii.String(s.APIHost + "."),
			Target: awsroute53.RecordTarget_FromAlias(awsroute53targets.NewApiGatewayv2DomainProperties(
				domain.RegionalDomainName(), domain.RegionalHostedZoneId())),
		})
		if s.MTLS() {
			awsroute53.NewARecord(stack, jsii.String("PeerAlias"), &awsroute53.ARecordProps{
				Zone:       zone,
				RecordName: jsii.String(s.PeerHost + "."),
				Target: awsroute53.RecordTarget_FromAlias(awsroute53targets.NewApiGatewayv2DomainProperties(
					r.peerDomain.RegionalDomainName(), r.peerDomain.RegionalHostedZoneId())),
			})
		}
		awsroute53.NewTxtRecord(stack, jsii.String("AmtpTxt"), &awsroute53.TxtRecordProps{
			Zone:       zone,
			RecordName: jsii.String("_amtp." + s.Domain + "."),
			Values:     &[]*string{TXTValue(r.publicURL, s)},
			Ttl:        awscdk.Duration_Minutes(jsii.Number(5)),
		})
	}
}

func newOutputs(stack awscdk.Stack, r *resources) {
	s := r.settings
	out := func(id, desc string, v *string) {
		awscdk.NewCfnOutput(stack, jsii.String(id), &awscdk.CfnOutputProps{Value: v, Description: jsii.String(desc)})
	}
	out("ApiUrl", "The gateway's public URL (AGENTRY_PUBLIC_URL; the TXT record's gateway=)", r.publicURL)
	out("ApiEndpoint", "The API Gateway endpoint (works even before DNS is published)", r.api.ApiEndpoint())
	published := "publish this record in your DNS"
	if s.HostedZone() {
		published = "published by the stack in hosted zone " + s.HostedZoneName
	}
	out("AmtpTxtRecord", "The _amtp TXT record ("+published+")",
		jsii.String(fmt.Sprintf("_amtp.%s. 300 IN TXT \"%s\"", s.Domain, *TXTValue(r.publicURL, s))))
	if s.CustomDomain() && !s.HostedZone() {
		out("ApiHostCnameTarget", "Point "+s.APIHost+" (CNAME) at this name", r.domain.RegionalDomainName())
	}
	out("SigningKeySecretArn", "Secrets Manager secret for the message-signing key: put the PEM from `agentry keygen` here", r.signKey.SecretArn())
	out("AdminKeySecretArn", "Secrets Manager secret holding the admin key (aws secretsmanager get-secret-value --secret-id …)", r.adminKey.SecretArn())
	out("TableName", "DynamoDB table", r.table.TableName())
	out("DeliveryQueueUrl", "SQS delivery queue", r.queue.QueueUrl())
	out("DeadLetterQueueUrl", "SQS dead-letter queue", r.dlq.QueueUrl())
	out("BodiesBucketName", "S3 bucket for large message bodies", r.bucket.BucketName())
}
