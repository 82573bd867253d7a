#!/bin/bash
# LocalStack init hook (runs once LocalStack is ready, see docker-compose.yml):
# creates Agentry's resources the way internal/adapter/awsres.Ensure does for moto
# and for `agentry serve` with AGENTRY_AWS_BOOTSTRAP=1: the table with its
# two GSIs and TTL, the dead-letter queue, the delivery queue with its
# redrive policy, and the bucket for large bodies.
#
# The values below are copies of internal/adapter/awsres. localstack/init_test.go
# reads the assignments from this file and compares them with awsres's
# constants, and runs this script against a recording awslocal to compare
# the requests with awsres's own; change one side and `make test` fails
# until the other matches. Keep the assignments in the plain NAME=value
# form that test parses.
set -euo pipefail

# Resource names: <prefix>-<suffix>, as awsres.NamesFor builds them. The
# prefix defaults like AGENTRY_RESOURCE_PREFIX in internal/runtime/config:
# "agentry-" + AGENTRY_DOMAIN (default localhost), lower case, dots and
# underscores as hyphens, at most 40 characters. (Domains given in
# Unicode are not converted to punycode here; set the prefix for those.)
if [[ -n ${AGENTRY_RESOURCE_PREFIX:-} ]]; then
	PREFIX=$AGENTRY_RESOURCE_PREFIX
else
	domain=${AGENTRY_DOMAIN:-localhost}
	domain=${domain%.}
	PREFIX=$(printf 'agentry-%s' "$domain" | tr 'A-Z._' 'a-z--')
	PREFIX=${PREFIX:0:40}
	while [[ $PREFIX == *- ]]; do PREFIX=${PREFIX%-}; done
fi
TABLE_SUFFIX=-main
DELIVERY_QUEUE_SUFFIX=-delivery
DEAD_LETTER_SUFFIX=-delivery-dlq
BUCKET_SUFFIX=-bodies

# Table shape (awsres.Attr*, GSI*, GSIProjection).
ATTR_PK=pk
ATTR_SK=sk
ATTR_TTL=expires_at
GSI1=gsi1
ATTR_GSI1PK=gsi1pk
ATTR_GSI1SK=gsi1sk
GSI2=gsi2
ATTR_GSI2PK=gsi2pk
ATTR_GSI2SK=gsi2sk
GSI_PROJECTION=KEYS_ONLY

# Queue settings in seconds (awsres.VisibilityTimeoutSeconds, ...).
VISIBILITY_TIMEOUT=180
MESSAGE_RETENTION=1209600
DLQ_RETENTION=1209600
RECEIVE_WAIT=20
MAX_RECEIVE_COUNT=5

TABLE=$PREFIX$TABLE_SUFFIX
DELIVERY_QUEUE=$PREFIX$DELIVERY_QUEUE_SUFFIX
DEAD_LETTER_QUEUE=$PREFIX$DEAD_LETTER_SUFFIX
BUCKET=$PREFIX$BUCKET_SUFFIX
REGION=${AWS_DEFAULT_REGION:-us-east-1}

# Like Ensure, leave what exists alone, so a restart with PERSISTENCE=1
# (or running this twice) is harmless.
if ! awslocal dynamodb describe-table --table-name "$TABLE" >/dev/null 2>&1; then
	key() { printf '{"AttributeName":"%s","KeyType":"%s"}' "$1" "$2"; }
	gsi() {
		printf '{"IndexName":"%s","KeySchema":[%s,%s],"Projection":{"ProjectionType":"%s"}}' \
			"$1" "$(key "$2" HASH)" "$(key "$3" RANGE)" "$GSI_PROJECTION"
	}
	attrs=""
	for a in "$ATTR_PK" "$ATTR_SK" "$ATTR_GSI1PK" "$ATTR_GSI1SK" "$ATTR_GSI2PK" "$ATTR_GSI2SK"; do
		attrs+="${attrs:+,}{\"AttributeName\":\"$a\",\"AttributeType\":\"S\"}"
	done
	awslocal dynamodb create-table --table-name "$TABLE" \
		--billing-mode PAY_PER_REQUEST \
		--attribute-definitions "[$attrs]" \
		--key-schema "[$(key "$ATTR_PK" HASH),$(key "$ATTR_SK" RANGE)]" \
		--global-secondary-indexes "[$(gsi "$GSI1" "$ATTR_GSI1PK" "$ATTR_GSI1SK"),$(gsi "$GSI2" "$ATTR_GSI2PK" "$ATTR_GSI2SK")]" \
		>/dev/null
	awslocal dynamodb wait table-exists --table-name "$TABLE"
	awslocal dynamodb update-time-to-live --table-name "$TABLE" \
		--time-to-live-specification "{\"AttributeName\":\"$ATTR_TTL\",\"Enabled\":true}" >/dev/null
fi

# CreateQueue with the same attributes is a no-op for an existing queue.
DLQ_URL=$(awslocal sqs create-queue --queue-name "$DEAD_LETTER_QUEUE" \
	--attributes "{\"MessageRetentionPeriod\":\"$DLQ_RETENTION\"}" \
	--query QueueUrl --output text)
DLQ_ARN=$(awslocal sqs get-queue-attributes --queue-url "$DLQ_URL" \
	--attribute-names QueueArn --query Attributes.QueueArn --output text)
redrive="{\\\"deadLetterTargetArn\\\":\\\"$DLQ_ARN\\\",\\\"maxReceiveCount\\\":$MAX_RECEIVE_COUNT}"
DELIVERY_URL=$(awslocal sqs create-queue --queue-name "$DELIVERY_QUEUE" \
	--attributes "{\"VisibilityTimeout\":\"$VISIBILITY_TIMEOUT\",\"MessageRetentionPeriod\":\"$MESSAGE_RETENTION\",\"ReceiveMessageWaitTimeSeconds\":\"$RECEIVE_WAIT\",\"RedrivePolicy\":\"$redrive\"}" \
	--query QueueUrl --output text)

if ! awslocal s3api head-bucket --bucket "$BUCKET" >/dev/null 2>&1; then
	if [[ $REGION == us-east-1 ]]; then
		awslocal s3api create-bucket --bucket "$BUCKET" >/dev/null
	else # outside us-east-1 S3 wants the region named
		awslocal s3api create-bucket --bucket "$BUCKET" \
			--create-bucket-configuration "LocationConstraint=$REGION" >/dev/null
	fi
fi

echo "agentry: resources for prefix $PREFIX ready:"
echo "  table           $TABLE"
echo "  delivery queue  $DELIVERY_URL"
echo "  dead letters    $DLQ_URL ($DLQ_ARN)"
echo "  bucket          $BUCKET"
