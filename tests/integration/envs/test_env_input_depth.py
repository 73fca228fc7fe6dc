"""JSON nested past Python's recursion limit, in the places the env service parses client JSON:
a policy's tool call (Step), a tool's parameter schema and an OpenEnv spec's JSON (RegisterEnv).
Each is the sender's bad input, answered like any other invalid JSON, never INTERNAL or an
environment error. 8,000 levels: past the default recursion limit of 1,000, and 16,000
characters, inside the spec's 16,384-character JSON fields and the 64 KiB action limit."""

from __future__ import annotations

import grpc
import pytest

from outrider.proto.v1 import common_pb2, env_pb2

DEEP = "[" * 8000 + "]" * 8000


async def test_a_too_deep_tool_call_is_a_malformed_call(start_env_service):
    _, stub = await start_env_service()
    task = (await stub.ListTasks(env_pb2.ListTasksRequest(env="python-tool", limit=1))).tasks[0]
    session = await stub.CreateSession(env_pb2.CreateSessionRequest(env="python-tool", task_id=task.id, seed=0))
    reply = await stub.Step(env_pb2.StepRequest(session_id=session.session_id, action=env_pb2.Action(text=f"<tool_call>{DEEP}</tool_call>")))
    assert reply.status.code == common_pb2.ItemStatus.OK and not reply.done, reply.status.message
    call = reply.info.tool_calls[0]
    assert call.status.code == common_pb2.ItemStatus.INVALID_INPUT
    assert "the call is not valid JSON (nested too deeply to parse at position 0)" in reply.observation.messages[0].content
    await stub.CloseSession(env_pb2.CloseSessionRequest(session_id=session.session_id))


async def _register_refused(stub, spec: env_pb2.EnvSpec) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.RegisterEnv(env_pb2.RegisterEnvRequest(spec=spec))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT, info.value.details()
    return info.value.details()


async def test_too_deep_spec_json_is_invalid_argument_naming_the_field(start_env_service):
    _, stub = await start_env_service()
    tool = env_pb2.EnvSpec(name="deep-tool", python=env_pb2.PythonEntryPoint(entry_point="outrider.envs.builtin.math_env:MathEnv"),
                           tools=[env_pb2.ToolSchema(name="calc", parameters_json_schema=DEEP)])
    details = await _register_refused(stub, tool)
    assert "spec.tools[0].parameters_json_schema: not valid JSON: nested too deeply to parse" in details
    openenv = env_pb2.EnvSpec(name="deep-openenv", openenv=env_pb2.OpenEnvEndpoint(
        base_url="http://127.0.0.1:9", action_field="message", action_template_json=DEEP))
    details = await _register_refused(stub, openenv)
    assert "spec.openenv.action_template_json: not valid JSON: nested too deeply to parse (line 1, column 1)" in details
    assert "deep-tool" not in [s.name for s in (await stub.ListEnvs(env_pb2.ListEnvsRequest())).envs]
