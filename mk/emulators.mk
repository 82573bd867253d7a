# Local AWS emulators: moto where there is no Docker (localstack/emulators.sh),
# LocalStack with Docker (localstack/docker-compose.yml). See localstack/README.md.
# Included from the Makefile; uses its GO and LDFLAGS.

# LocalStack's edge port, so the same AWS_ENDPOINT_URL works with either.
EMULATOR_PORT ?= 4566
EMULATORS     := EMULATOR_PORT=$(EMULATOR_PORT) GO=$(GO) localstack/emulators.sh

.PHONY: emulators-up emulators-down emulators-check run-aws-local

## emulators-up: start moto on 127.0.0.1:$(EMULATOR_PORT), create the resources, print the exports
emulators-up:
	@$(EMULATORS) up

## emulators-down: stop the moto that emulators-up started
emulators-down:
	@$(EMULATORS) down

## emulators-check: check moto's Step Functions (and the launcher's patch) on a fresh moto
emulators-check:
	@$(EMULATORS) check

## run-aws-local: the gateway on the AWS backend, against the emulator from emulators-up
# The emulator outlives this target (Ctrl-C stops only the gateway);
# `make emulators-down` stops it. Without an admin key or signing key of
# the user's own, local ones are kept in .emulators/.
run-aws-local: emulators-up
	@eval "$$($(EMULATORS) env)"; \
	if [ -z "$${AGENTRY_ADMIN_KEY:-}$${AGENTRY_ADMIN_KEY_SECRET_ARN:-}" ]; then \
		AGENTRY_ADMIN_KEY=$$($(EMULATORS) admin-key) || exit 1; export AGENTRY_ADMIN_KEY; \
		echo "admin key (from .emulators/admin.key): $$AGENTRY_ADMIN_KEY"; \
	fi; \
	if [ -z "$${AGENTRY_SIGNING_KEY:-}$${AGENTRY_SIGNING_KEY_FILE:-}$${AGENTRY_SIGNING_KEY_SECRET_ARN:-}" ]; then \
		[ -s .emulators/signing.pem ] || $(GO) run ./cmd/agentry keygen -out .emulators/signing.pem >/dev/null || exit 1; \
		export AGENTRY_SIGNING_KEY_FILE=$$PWD/.emulators/signing.pem; \
	fi; \
	AGENTRY_BACKEND=aws AGENTRY_AWS_BOOTSTRAP=1 exec $(GO) run -ldflags "$(LDFLAGS)" ./cmd/agentry serve
