"""A remote environment: its own process and port, serving outrider.v1.EnvService.

    python -m outrider.envs.examples.remote_counter --port 50071

It imports nothing of Outrider but the generated protobuf/gRPC code, the way a
server written in Go, Rust or Java would use code generated from env.proto.
"""
