#!/usr/bin/env python3
"""Check that Step Functions in moto runs what Agentry needs, repeatedly.

Usage: check_moto_sfn.py [--endpoint URL] [--unpatched]

Without --endpoint it starts its own moto through moto_launcher.py on a
free loopback port and stops it afterwards; with --endpoint it uses a
running emulator (for example the one `make emulators-up` started).

Checks (every execution is polled with DescribeExecution until it ends):
  1. a Pass machine: three executions with explicit names, started in a
     row, all SUCCEEDED (the second one is what moto 5.2.1 breaks);
  2. a second machine using sqs:sendMessage.waitForTaskToken: its first
     start comes after another machine has run (the other case moto 5.2.1
     breaks), three named executions, each released by SendTaskSuccess
     with the token from its queue message, all SUCCEEDED with that output;
  3. two executions without a name get distinct ARNs and both run.

Exit status: 0 all checks passed, 1 a check failed, 3 missing tools.
With --unpatched the launcher leaves moto's bugs in place and the meaning
turns around, so CI notices when an upgraded moto makes the patch
unnecessary: 0 the bug still shows (the patch is needed), 2 everything
passed without the patch (it can go), 1 the setup itself failed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LAUNCHER = os.path.join(HERE, "moto_launcher.py")
REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/agentry-check"
POLL_SECONDS = 20


class CheckFailed(Exception):
    """One check did not hold; the message says which and why."""


def start_launcher(unpatched):
    # Our own moto on a free port; the launcher writes the port once moto
    # accepts connections, so there is no guessing and no race.
    tmp = tempfile.mkdtemp(prefix="agentry-sfn-check-")
    port_file = os.path.join(tmp, "port")
    cmd = [sys.executable, LAUNCHER, "--host", "127.0.0.1", "--port", "0", "--port-file", port_file]
    if unpatched:
        cmd.append("--no-sfn-patch")
    log = open(os.path.join(tmp, "moto.log"), "w+")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while time.time() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit("moto launcher exited with %d:\n%s" % (proc.returncode, log.read()))
        try:
            with open(port_file) as f:
                port = f.read().strip()
            if port:
                return proc, "http://127.0.0.1:" + port, log
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("moto launcher did not report a port within 60s")


def stop_launcher(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def enable_execution(endpoint):
    # Must precede CreateStateMachine: moto keeps machines created before
    # and after this switch in different backends.
    body = json.dumps({"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}).encode()
    req = urllib.request.Request(endpoint + "/moto-api/config", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        if resp.status // 100 != 2:
            raise CheckFailed("POST /moto-api/config answered %d" % resp.status)


def clients(endpoint):
    import boto3
    from botocore.config import Config
    # No retries: a 500 should show up as the failure it is, at once.
    cfg = Config(retries={"max_attempts": 1, "mode": "standard"})
    kw = dict(endpoint_url=endpoint, region_name=REGION, aws_access_key_id="test",
              aws_secret_access_key="test", config=cfg)
    return boto3.client("stepfunctions", **kw), boto3.client("sqs", **kw)


def start(sfn, machine_arn, name=None, payload=None):
    kw = {"stateMachineArn": machine_arn, "input": json.dumps(payload or {})}
    if name is not None:
        kw["name"] = name
    try:
        return sfn.start_execution(**kw)["executionArn"]
    except Exception as e:  # the 500 of the deepcopy bug lands here
        raise CheckFailed("StartExecution %s: %s" % (name or "(no name)", first_line(e)))


def wait_done(sfn, execution_arn):
    deadline = time.time() + POLL_SECONDS
    while True:
        out = sfn.describe_execution(executionArn=execution_arn)
        if out["status"] != "RUNNING" or time.time() > deadline:
            return out
        time.sleep(0.1)


def expect_succeeded(sfn, execution_arn, want_output=None):
    out = wait_done(sfn, execution_arn)
    if out["status"] != "SUCCEEDED":
        raise CheckFailed("%s ended %s (error=%s cause=%s)" % (
            execution_arn, out["status"], out.get("error"), out.get("cause")))
    if want_output is not None and json.loads(out.get("output", "null")) != want_output:
        raise CheckFailed("%s output %s, want %s" % (execution_arn, out.get("output"), json.dumps(want_output)))


def first_line(e):
    # A moto crash comes back as HTTP 500 with an HTML page; say that much
    # and leave the traceback to the server log.
    resp = getattr(e, "response", None) or {}
    if resp.get("ResponseMetadata", {}).get("HTTPStatusCode") == 500:
        return "HTTP 500 (moto raised an exception; see its log)"
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def create_pass_machine(sfn, tag):
    definition = {"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}}
    return sfn.create_state_machine(name="pass-" + tag, roleArn=ROLE, definition=json.dumps(definition))["stateMachineArn"]


def check_named(sfn, machine_arn):
    # Start all three before looking at any, as a burst of workflows would.
    runs = [start(sfn, machine_arn, "run-%d" % i, {"i": i}) for i in range(1, 4)]
    for i, run in enumerate(runs, 1):
        expect_succeeded(sfn, run, {"i": i})


def check_callback_machine(sfn, sqs, tag):
    queue_url = sqs.create_queue(QueueName="sfn-callbacks-" + tag)["QueueUrl"]
    definition = {
        "StartAt": "Wait for reply",
        "States": {"Wait for reply": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"QueueUrl": queue_url, "MessageBody": {"token.$": "$$.Task.Token", "run.$": "$.run"}},
            "End": True,
        }},
    }
    arn = sfn.create_state_machine(name="callback-" + tag, roleArn=ROLE, definition=json.dumps(definition))["stateMachineArn"]
    runs = {i: start(sfn, arn, "run-%d" % i, {"run": i}) for i in range(1, 4)}
    tokens = {}
    deadline = time.time() + POLL_SECONDS
    while len(tokens) < len(runs) and time.time() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for m in got.get("Messages", []):
            body = json.loads(m["Body"])
            tokens[body["run"]] = body["token"]
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
    if len(tokens) != len(runs):
        raise CheckFailed("waitForTaskToken: %d of %d task messages arrived" % (len(tokens), len(runs)))
    for i, token in tokens.items():
        sfn.send_task_success(taskToken=token, output=json.dumps({"reply": i}))
    for i, run in runs.items():
        expect_succeeded(sfn, run, {"reply": i})


def check_unnamed(sfn, machine_arn):
    first = start(sfn, machine_arn)
    second = start(sfn, machine_arn)
    for arn in (first, second):
        if arn.endswith(":None"):
            raise CheckFailed("unnamed execution got ARN %s" % arn)
        expect_succeeded(sfn, arn)
    if first == second:
        raise CheckFailed("two unnamed executions share ARN %s" % first)


def run_checks(endpoint, expect_bug):
    """Returns the failures as (check, reason); empty means all passed."""
    sfn, sqs = clients(endpoint)
    enable_execution(endpoint)
    # Unique names, so a long-running emulator can be checked repeatedly.
    tag = "%d-%d" % (os.getpid(), int(time.time() * 1000) % 10**9)
    pass_arn = create_pass_machine(sfn, tag)
    failures = []
    for label, fn in [
        ("three named executions of one machine", lambda: check_named(sfn, pass_arn)),
        ("waitForTaskToken machine after another machine ran", lambda: check_callback_machine(sfn, sqs, tag)),
        ("executions without a name", lambda: check_unnamed(sfn, pass_arn)),
    ]:
        try:
            fn()
            print("ok    %s" % label)
        except CheckFailed as e:
            failures.append((label, str(e)))
            print("%s  %s: %s" % ("bug " if expect_bug else "FAIL", label, e))
    return failures


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", default="", help="use this running emulator instead of starting moto")
    ap.add_argument("--unpatched", action="store_true", help="start moto without the launcher's Step Functions patch")
    args = ap.parse_args()
    if args.unpatched and args.endpoint:
        ap.error("--unpatched starts its own moto; it cannot be combined with --endpoint")
    try:
        import boto3  # noqa: F401  (comes with moto)
        import moto.server  # noqa: F401
    except ImportError as e:
        print("check_moto_sfn: python3 cannot import %s; moto 5.x with its server extras is required "
              "(see shared/LOCAL-AWS.md)" % e.name, file=sys.stderr)
        return 3

    proc = log = None
    endpoint = args.endpoint.rstrip("/")
    if not endpoint:
        proc, endpoint, log = start_launcher(args.unpatched)
    try:
        failures = run_checks(endpoint, args.unpatched)
    except Exception as e:  # setup trouble (emulator down, config refused): not a verdict
        print("check_moto_sfn: setup failed against %s: %s" % (endpoint, first_line(e)), file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            stop_launcher(proc)
            log.seek(0)
            crashes = sorted({line.strip() for line in log if line.startswith(("TypeError", "AttributeError", "KeyError"))})
            log.close()
            for line in crashes:
                print("moto log: %s" % line)

    if args.unpatched:
        if failures:
            print("moto without the patch still fails %d check(s): the launcher's patch is needed" % len(failures))
            return 0
        print("moto without the patch passes every check: the launcher's Step Functions patch can be removed")
        return 2
    if failures:
        print("Step Functions in moto at %s: %d check(s) failed" % (endpoint, len(failures)), file=sys.stderr)
        return 1
    print("Step Functions in moto at %s: all checks passed" % endpoint)
    return 0


if __name__ == "__main__":
    sys.exit(main())
