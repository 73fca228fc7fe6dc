"""Runs inside an agent's sandbox: the one way out, then the agent program itself.

    python3 forwarder.py PORT SOCKET -- AGENT ARGV...

The sandbox's network namespace has only a loopback interface and no routes. This
listens on 127.0.0.1:PORT there and relays each connection to SOCKET, a Unix socket
that the env service bridges to the policy gateway and nowhere else; then it runs the
agent and exits with its status (128 + N when a signal N killed it, as a shell does).
Standard library only: it runs under the sandbox's own Python, with nothing imported
from Outrider.
"""

import socket
import subprocess
import sys
import threading


def pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def relay(client: socket.socket, path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    pipe(upstream, client)


def serve(listener: socket.socket, path: str) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=relay, args=(client, path), daemon=True).start()


def main() -> int:
    port, path, separator, *argv = sys.argv[1:]
    if separator != "--" or not argv:
        print("usage: forwarder.py PORT SOCKET -- AGENT ARGV...", file=sys.stderr)
        return 2
    listener = socket.create_server(("127.0.0.1", int(port)))
    threading.Thread(target=serve, args=(listener, path), daemon=True).start()
    try:
        code = subprocess.call(argv)
    except OSError as exc:
        print(f"cannot start the agent {argv[0]!r}: {exc}", file=sys.stderr)
        return 127
    return 128 - code if code < 0 else code


if __name__ == "__main__":
    sys.exit(main())
