# AWS deployment: the Lambda functions, the CDK app in infra/, cfn-lint.
# Included from the Makefile; uses its GO. The CDK CLI is the one pinned in
# package.json/package-lock.json, installed into node_modules by `npm ci`
# (never a global install), so every machine synthesizes with the same CLI.
#
#   make deploy STAGE=prod DOMAIN=example.com [HOSTED_ZONE_ID=… HOSTED_ZONE_NAME=…] [ALARM_EMAIL=…]
#   make destroy STAGE=dev
#   make synth            # offline, no credentials: cdk.out/agentry-dev.template.json

STAGE      ?= dev
LAMBDAS    := api deliver deadletter inbound-email email-events
LAMBDA_DIR ?= bin/lambda
CDK        := node_modules/.bin/cdk
# Stand-in function code for commands that synthesize but deploy no code
# (destroy, bootstrap, cfn-lint): they need not build the functions.
PLACEHOLDER_DIR := bin/lambda-placeholder


# Settings become CDK context (infra/settings.go documents each).
CDK_SETTINGS = -c stage=$(STAGE) \
	$(if $(DOMAIN),-c domain=$(DOMAIN)) \
	$(if $(PREFIX),-c prefix=$(PREFIX)) \
	$(if $(HOSTED_ZONE_ID),-c hostedZoneId=$(HOSTED_ZONE_ID)) \
	$(if $(HOSTED_ZONE_NAME),-c hostedZoneName=$(HOSTED_ZONE_NAME)) \
	$(if $(API_HOST),-c apiHost=$(API_HOST)) \
	$(if $(CERTIFICATE_ARN),-c certificateArn=$(CERTIFICATE_ARN)) \
	$(if $(ALARM_EMAIL),-c alarmEmail=$(ALARM_EMAIL)) \
	$(if $(LOG_LEVEL),-c logLevel=$(LOG_LEVEL)) \
	$(if $(POLICY_FILE),-c policyFile=$(abspath $(POLICY_FILE))) \
	$(if $(OAUTH_ISSUER),-c oauthIssuer=$(OAUTH_ISSUER)) \
	$(if $(OAUTH_AUDIENCE),-c oauthAudience=$(OAUTH_AUDIENCE)) \
	$(if $(MTLS_TRUSTSTORE),-c mtlsTruststore=$(MTLS_TRUSTSTORE)) \
	$(if $(MTLS_TRUSTSTORE_VERSION),-c mtlsTruststoreVersion=$(MTLS_TRUSTSTORE_VERSION)) \
	$(if $(PEER_HOST),-c peerHost=$(PEER_HOST)) \
	$(if $(PEER_CERTIFICATE_ARN),-c peerCertificateArn=$(PEER_CERTIFICATE_ARN))
# cdk runs in infra/ (where cdk.json is), hence the ../ paths. jsii (in the
# CDK app) and the CDK CLI print a large banner on Node majors they consider
# end-of-life unless the variable lists that major (a list, not a boolean).
CDK_RUN = cd infra && JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=$${JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION:-$$(node -p 'process.versions.node.split(".")[0]')} ../$(CDK)

.PHONY: lambdas lambda-placeholders synth deploy destroy cdk-bootstrap cfn-lint snapshot

## lambdas: build each function as $(LAMBDA_DIR)/<name>/bootstrap (linux/arm64, provided.al2023)
lambdas:
	@for f in $(LAMBDAS); do \
		echo "go build ./functions/$$f -> $(LAMBDA_DIR)/$$f/bootstrap"; \
		GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -ldflags "-s -w" \
			-o $(LAMBDA_DIR)/$$f/bootstrap ./functions/$$f || exit 1; \
	done

lambda-placeholders:
	@for f in $(LAMBDAS); do \
		mkdir -p $(PLACEHOLDER_DIR)/$$f && printf '#!/bin/sh\n# placeholder: make lambdas builds the real one\n' > $(PLACEHOLDER_DIR)/$$f/bootstrap; \
	done

$(CDK): package.json package-lock.json
	npm ci --no-audit --no-fund
	@touch $@

## synth: build the functions and synthesize the stack into cdk.out/ (offline; STAGE=dev by default)
synth: $(CDK) lambdas
	$(CDK_RUN) synth $(CDK_SETTINGS) -c lambdaDir=$(abspath $(LAMBDA_DIR)) --output ../cdk.out --quiet
	@echo "cdk.out/agentry-$(STAGE).template.json"

## deploy: build the functions and `cdk deploy` the stack (STAGE=dev|prod, DOMAIN=…; AWS credentials)
deploy: $(CDK) lambdas
	$(CDK_RUN) deploy $(CDK_SETTINGS) -c lambdaDir=$(abspath $(LAMBDA_DIR)) --output ../cdk.out $(CDK_ARGS)

## destroy: `cdk destroy` the stack of STAGE (prod keeps its table, bucket, secret and logs)
destroy: $(CDK) lambda-placeholders
	$(CDK_RUN) destroy $(CDK_SETTINGS) -c lambdaDir=$(abspath $(PLACEHOLDER_DIR)) --output ../cdk.out/destroy $(CDK_ARGS)

## cdk-bootstrap: once per account and region, `cdk bootstrap` (the asset bucket and deploy roles CDK uses)
cdk-bootstrap: $(CDK) lambda-placeholders
	$(CDK_RUN) bootstrap $(CDK_SETTINGS) -c lambdaDir=$(abspath $(PLACEHOLDER_DIR)) --output ../cdk.out/bootstrap $(CDK_ARGS)

## cfn-lint: synthesize dev and a prod with every option on, lint them and template.yaml
# Lints what CloudFormation would receive; function code is irrelevant to
# that, so placeholders stand in and no cross-compilation is needed.
cfn-lint: $(CDK) lambda-placeholders
	@command -v cfn-lint >/dev/null || { echo "cfn-lint not found (pip install cfn-lint)"; exit 1; }
	$(CDK_RUN) synth -c stage=dev -c lambdaDir=$(abspath $(PLACEHOLDER_DIR)) --output ../cdk.out/lint-dev --quiet
	$(CDK_RUN) synth -c stage=prod -c domain=example.org -c hostedZoneId=Z0123456789EXAMPLE -c hostedZoneName=example.org \
		-c alarmEmail=ops@example.org -c lambdaDir=$(abspath $(PLACEHOLDER_DIR)) --output ../cdk.out/lint-prod --quiet
	cfn-lint cdk.out/lint-dev/*.template.json cdk.out/lint-prod/*.template.json
	cfn-lint template.yaml

## snapshot: refresh infra/testdata/agentry-dev.template.json (what tests create in moto) from the stack
snapshot:
	$(GO) test -count=1 -run '^TestSnapshotUpToDate$$' ./infra -args -update
