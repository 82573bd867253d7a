#!/usr/bin/env python3
"""Start moto's server (every AWS service on one port) for Agentry's tests
and `make emulators-up`, on machines without Docker.

Usage: moto_launcher.py [--host 127.0.0.1] [--port 0] [--port-file FILE]
                        [--pid-file FILE] [--sfn-execute] [--no-sfn-patch]

With --port 0 a free port is chosen and written to --port-file once the
server accepts connections, so callers never race for a port.
--pid-file gets this process's id before anything can fail, so a caller
that detached us (setsid -f) knows which process to watch and to stop.
--sfn-execute makes Step Functions run state machines from the first
request on (the same as POST /moto-api/config, which must otherwise come
before the state machines are created: moto keeps machines created before
and after that switch in two different backends).

moto 5.2.1 Step Functions bug (reproduced and checked by
localstack/check_moto_sfn.py; `make emulators-check` runs it with and
without this patch):
  StepFunctionsParserBackend.start_execution (moto/stepfunctions/parser/
  models.py) snapshots the state machine with copy.deepcopy(state_machine)
  so that later updates do not change a running execution. That deepcopy
  follows two references that are not part of the definition:
    - state_machine.executions: after one run it holds an Execution whose
      exec_worker.env._state_mutex is a threading.RLock, which cannot be
      copied -> HTTP 500 "cannot pickle '_thread.RLock' object" on the
      SECOND StartExecution of that machine;
    - state_machine.backend: the whole StepFunctionsParserBackend, i.e.
      every other state machine with its executions -> the FIRST
      StartExecution of machine B fails as soon as machine A has run once
      (and, before that, each start copied the entire backend).
  Upstream's fix (getmoto/moto#10077, PR #10093; not in 5.2.1) is described
  as pre-seeding the deepcopy memo with the started machine's executions
  list only; emulated here, that still fails the second case (machine A's
  executions are reached through the backend), so check_moto_sfn.py
  covers both.
  Fix: a __deepcopy__ on StateMachineInstance (the base of StateMachine
  and StateMachineVersion) that gives every copied machine an empty
  executions list and shares the backend instead of copying it. The empty
  list alone would already stop the 500s; sharing the backend keeps each
  execution from holding a private copy of the whole service.
  Everything else (definition, role, versions, ...) is copied as before.
A second, smaller bug in the same method: without a name the execution
ARN ends in "None", and every later unnamed start collides with it
(ExecutionAlreadyExists). AWS names such executions with a UUID; so do we.
"""
import argparse
import copy
import os
import socket
import sys
import threading
import time
import uuid


def patch_stepfunctions():
    try:
        from moto.stepfunctions import models as sfn_models
        from moto.stepfunctions.parser import models as parser_models
    except ImportError:  # a moto without the Step Functions parser: nothing to patch
        return
    instance_cls = sfn_models.StateMachineInstance
    if getattr(instance_cls, "_agentry_patched", False):
        return

    def snapshot_deepcopy(self, memo):
        # copy.copy goes through the same __reduce_ex__ path as a plain
        # deepcopy (so moto's BaseModel instance tracking still sees the
        # clone); only the attributes' values are then deep-copied by hand.
        clone = copy.copy(self)
        memo[id(self)] = clone
        for key, value in self.__dict__.items():
            if key == "executions":
                # Run history, not definition: the snapshot starts empty
                # (what upstream's fix does too).
                clone.__dict__[key] = []
            elif key == "backend":
                # The service the machine lives in: shared, never copied.
                clone.__dict__[key] = value
            else:
                clone.__dict__[key] = copy.deepcopy(value, memo)
        return clone

    instance_cls.__deepcopy__ = snapshot_deepcopy
    instance_cls._agentry_patched = True

    backend_cls = parser_models.StepFunctionsParserBackend
    unnamed_start = backend_cls.start_execution

    def start_execution(self, state_machine_arn, name=None, execution_input=None, trace_header=None):
        # moto's responses pass name=None when the request has none.
        return unnamed_start(self, state_machine_arn, name or str(uuid.uuid4()), execution_input, trace_header)

    backend_cls.start_execution = start_execution


def patch_dynamodb_serial():
    """moto runs requests on threads and its DynamoDB backend takes no lock:
    TransactWriteItems checks every condition, then writes, then on failure
    restores a deep copy of the whole table taken when it started. Two
    concurrent transactions on one item can therefore both pass a condition
    (both "win"), and a cancelled one can restore a copy that predates the
    other's commit (erasing it). DynamoDB serializes these; so does this
    patch, with one lock around every backend call that reads or writes
    items (an RLock: the calls nest)."""
    import functools
    from moto.dynamodb.models import DynamoDBBackend
    if getattr(DynamoDBBackend, "_agentry_serial", False):
        return
    lock = threading.RLock()
    for name in ("put_item", "update_item", "delete_item", "get_item", "query", "scan",
                 "batch_write_item", "batch_get_item", "transact_write_items", "transact_get_items"):
        original = getattr(DynamoDBBackend, name, None)
        if original is None:
            continue

        def serial(*args, __original=original, **kwargs):
            with lock:
                return __original(*args, **kwargs)

        setattr(DynamoDBBackend, name, functools.wraps(original)(serial))
    DynamoDBBackend._agentry_serial = True


def enable_sfn_execution():
    # The same switch as POST /moto-api/config; lambda stays out of Docker
    # because lambda:invoke cannot run a container here anyway.
    from moto.core.config import default_user_config
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    default_user_config["lambda"] = {"use_docker": False}


def free_port(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_listening(host, port, port_file):
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.05)
    else:
        print("moto did not start listening", file=sys.stderr)
        os._exit(1)
    if port_file:
        write_atomically(port_file, str(port))


def write_atomically(path, text):
    # Readers poll for the file; they must never see it half written.
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", default="")
    ap.add_argument("--pid-file", default="")
    ap.add_argument("--sfn-execute", action="store_true", help="run Step Functions state machines from the start")
    ap.add_argument("--no-sfn-patch", action="store_true", help="leave moto's Step Functions bugs in place (to check whether they still exist)")
    args = ap.parse_args()
    if args.pid_file:
        write_atomically(args.pid_file, str(os.getpid()))
    if args.port:
        # Fail before moto does: its own error is a traceback, and the
        # port-file thread would mistake the other listener for moto.
        # SO_REUSEADDR as werkzeug sets it, so that connections of a moto
        # stopped a moment ago (TIME_WAIT) do not count as "in use".
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind((args.host, args.port))
        except OSError as e:
            print("port %d on %s is not free: %s" % (args.port, args.host, e), file=sys.stderr)
            sys.exit(4)
    try:
        import moto.server  # noqa: F401
    except ImportError as e:
        print("moto (with server extras) is not installed for %s: %s" % (sys.executable, e), file=sys.stderr)
        sys.exit(3)
    if not args.no_sfn_patch:
        patch_stepfunctions()
    patch_dynamodb_serial()
    if args.sfn_execute:
        enable_sfn_execution()
    port = args.port or free_port(args.host)
    threading.Thread(target=wait_listening, args=(args.host, port, args.port_file), daemon=True).start()
    from moto.server import main as moto_main
    sys.argv = ["moto_server", "-H", args.host, "-p", str(port)]
    moto_main()


if __name__ == "__main__":
    main()
