#!/usr/bin/python3
"""A plain libzmq peer (Debian's python3-zmq, libzmq 4.3) for the interop
tests of curvebus.js.  Run with the system interpreter.

  zmq_peer.py dealer ENDPOINT SERVER_PUBLIC_Z85 SECONDS
      A CURVE client DEALER, as libzmq makes one, connecting to ENDPOINT and
      staying SECONDS: the test listens there and records its bytes.

  zmq_peer.py echo SECRET_Z85 SECONDS
      A CURVE server ROUTER on tcp://127.0.0.1:* with ZMTP heartbeats on
      (PING every 100 ms, 1 s timeout): prints "endpoint <ENDPOINT>", then
      echoes every message back to its sender, part for part, and prints
      "echo <n parts>" and "disconnected" (socket monitor) as they happen.
"""
import sys
import time

import zmq
import zmq.utils.monitor


def dealer(endpoint, server_key, seconds):
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    public, secret = zmq.curve_keypair()
    s.curve_serverkey = server_key.encode()
    s.curve_publickey = public
    s.curve_secretkey = secret
    s.connect(endpoint)
    time.sleep(seconds)
    s.close()
    ctx.term()


def echo(secret_key, seconds):
    ctx = zmq.Context()
    s = ctx.socket(zmq.ROUTER)
    s.linger = 0
    s.curve_server = True
    s.curve_secretkey = secret_key.encode()
    s.setsockopt(zmq.HEARTBEAT_IVL, 100)
    s.setsockopt(zmq.HEARTBEAT_TIMEOUT, 1000)
    s.bind("tcp://127.0.0.1:*")
    mon = s.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    print("endpoint", s.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)
    poller = zmq.Poller()
    poller.register(s, zmq.POLLIN)
    poller.register(mon, zmq.POLLIN)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for sock, _ in poller.poll(50):
            if sock is mon:
                ev = zmq.utils.monitor.recv_monitor_message(mon)
                if ev["event"] == zmq.EVENT_DISCONNECTED:
                    print("disconnected", flush=True)
                elif ev["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    print("handshake", flush=True)
            else:
                parts = s.recv_multipart()
                s.send_multipart(parts)
                print("echo", len(parts) - 1, flush=True)
    s.disable_monitor()
    s.close()
    mon.close()
    ctx.term()


if __name__ == "__main__":
    if sys.argv[1] == "dealer":
        dealer(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    elif sys.argv[1] == "echo":
        echo(sys.argv[2], float(sys.argv[3]))
    else:
        sys.exit("usage: zmq_peer.py dealer|echo ...")
