#!/usr/bin/env python3
"""Start moto's server (every AWS service on one port) for Agentry's tests
and `make emulators-up`, on machines without Docker.

Usage: moto_launcher.py [--host 127.0.0.1] [--port 0] [--port-file FILE]

With --port 0 a free port is chosen and written to --port-file once the
server accepts connections, so callers never race for a port.

moto 5.2.1 workaround (see shared/LOCAL-AWS.md): a second StartExecution of
the same state machine fails because moto's ASL parser deep-copies the
state machine together with its earlier executions and the shared backend
(which holds a lock). The patch below makes deepcopy of those objects
skip the executions list and return the backend itself.
"""
import argparse
import copy
import os
import socket
import sys
import threading
import time


def patch_stepfunctions():
    try:
        from moto.stepfunctions import models as sfn_models
    except Exception:  # moto without stepfunctions: nothing to patch
        return
    machine_cls = getattr(sfn_models, "StateMachine", None)
    if machine_cls is not None and not getattr(machine_cls, "_agentry_patched", False):
        def machine_deepcopy(self, memo):
            clone = machine_cls.__new__(machine_cls)
            memo[id(self)] = clone
            for key, value in self.__dict__.items():
                if key == "executions":
                    # Executions are history, not definition: share them.
                    setattr(clone, key, value)
                else:
                    setattr(clone, key, copy.deepcopy(value, memo))
            return clone
        machine_cls.__deepcopy__ = machine_deepcopy
        machine_cls._agentry_patched = True
    backend_cls = getattr(sfn_models, "StepFunctionBackend", None)
    if backend_cls is not None:
        backend_cls.__deepcopy__ = lambda self, memo: self
    try:
        from moto.stepfunctions.parser import models as parser_models
        parser_backend = getattr(parser_models, "StepFunctionsParserBackend", None)
        if parser_backend is not None:
            parser_backend.__deepcopy__ = lambda self, memo: self
    except Exception:
        pass


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
        tmp = port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(port))
        os.replace(tmp, port_file)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", default="")
    args = ap.parse_args()
    try:
        import moto.server  # noqa: F401
    except ImportError as e:
        print("moto (with server extras) is not installed for %s: %s" % (sys.executable, e), file=sys.stderr)
        sys.exit(3)
    patch_stepfunctions()
    port = args.port or free_port(args.host)
    threading.Thread(target=wait_listening, args=(args.host, port, args.port_file), daemon=True).start()
    from moto.server import main as moto_main
    sys.argv = ["moto_server", "-H", args.host, "-p", str(port)]
    moto_main()


if __name__ == "__main__":
    main()
