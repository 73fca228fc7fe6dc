"""RunAgent: one episode of an `agent` environment (docs/agents.md).

    1. open an episode of the task in `agent.tasks_from` (its first observation is the task);
    2. run the agent program in the sandbox (outrider.envs.agent) with the task and an
       OpenAI base URL for the caller's captured session, bridged to the configured
       policy gateway and nowhere else;
    3. when it exits with status 0, its stdout is the final answer: one Step of the
       `tasks_from` episode verifies it (reward, solved);
    4. close that episode.

The caller names the session; the gateway address is this service's configuration
(`agent_gateway`), never the caller's, so no request can point a sandbox at another
host. The outcome is typed (envs/agent/runner.py); only an OK run has a reward.
"""

from __future__ import annotations

import logging

from outrider.config.env import EnvServiceConfig
from outrider.envs.agent import AgentOutcome, AgentRun, GatewayBridge, run_agent
from outrider.envs.sandbox import Limits
from outrider.proto.v1 import common_pb2, env_pb2
from outrider.serving import FailedPrecondition, InvalidArgument
from outrider.serving.credentials import ClientCredentials
from outrider.services.env.metrics import ENV_ERRORS

log = logging.getLogger(__name__)

_OUTCOMES = {
    AgentOutcome.OK: env_pb2.AGENT_OUTCOME_OK,
    AgentOutcome.FAILED: env_pb2.AGENT_OUTCOME_FAILED,
    AgentOutcome.TIMEOUT: env_pb2.AGENT_OUTCOME_TIMEOUT,
    AgentOutcome.KILLED: env_pb2.AGENT_OUTCOME_KILLED,
    AgentOutcome.INFRA: env_pb2.AGENT_OUTCOME_INFRA,
}


def gateway_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


class AgentEpisodes:
    def __init__(self, core, cfg: EnvServiceConfig):
        self.core = core
        self.gateway = cfg.agent_gateway
        self.gateway_tls = cfg.agent_gateway_tls
        self.default_limits = Limits.from_config(cfg.agent_limits)

    async def run(self, request: env_pb2.RunAgentRequest) -> env_pb2.RunAgentResponse:
        entry = self.core._env(request.env)
        spec = entry.spec
        if spec.WhichOneof("kind") != "agent":
            raise FailedPrecondition(f"environment {spec.name!r} is of kind {spec.WhichOneof('kind')!r}: "
                                     "play it with CreateSession and Step; RunAgent plays `agent` environments")
        if not request.session_id:
            raise InvalidArgument("session_id: is empty; open a captured policy session first (docs/agents.md)")
        if self.gateway is None:
            raise FailedPrecondition("this env service has no agent_gateway (the policy service's HTTP host:port): "
                                     "agent environments cannot reach a policy; `outrider up` and `train` set it")
        sandbox = self.core.registry.sandbox
        if sandbox is None or not sandbox.supports_extras:
            why = self.core.registry.sandbox_unavailable_reason or f"the {sandbox.name} backend cannot mount the agent"
            raise FailedPrecondition(f"environment {spec.name!r}: agent programs need the bwrap sandbox ({why})")
        opened = await self.core.create_session(env_pb2.CreateSessionRequest(
            env=spec.agent.tasks_from, task_id=request.task_id, seed=request.seed))
        try:
            messages = list(opened.observation.messages)
            prompt = next((m.content for m in reversed(messages) if m.role == "user"), "")
            task = {"id": request.task_id, "env": spec.name, "seed": request.seed, "prompt": prompt,
                    "messages": [{"role": m.role, "content": m.content} for m in messages]}
            run = await self._run(spec, request, task)
            response = env_pb2.RunAgentResponse(
                outcome=_OUTCOMES[run.outcome], message=run.message, output=run.output, exit_code=run.exit_code,
                duration_s=run.duration_s, stderr_tail=run.stderr_tail, task_messages=messages)
            if run.outcome is AgentOutcome.OK:
                await self._verify(opened.session_id, run, response)
            elif run.outcome.infrastructure:
                ENV_ERRORS.labels(spec.name, "agent").inc()
            return response
        finally:
            await self.core.close_session(opened.session_id)

    async def _run(self, spec: env_pb2.EnvSpec, request: env_pb2.RunAgentRequest, task: dict) -> AgentRun:
        host, port = gateway_address(self.gateway)
        limits = self.default_limits.merged(spec.sandbox if spec.HasField("sandbox") else None)
        tls = ClientCredentials.from_env().ssl_context() if self.gateway_tls else None
        async with GatewayBridge(host, port, tls) as bridge:
            return await run_agent(
                self.core.registry.sandbox, list(spec.agent.command), bridge, session_id=request.session_id,
                model=request.model, task=task, limits=limits, directory=spec.agent.directory,
                host_python_packages=spec.agent.host_python_packages, env=dict(spec.agent.env),
            )

    async def _verify(self, session_id: str, run: AgentRun, response: env_pb2.RunAgentResponse) -> None:
        """The final answer as one action of the `tasks_from` episode: its Step is the verdict."""
        size = len(run.output.encode())
        if size > self.core.max_action_bytes:
            response.outcome = env_pb2.AGENT_OUTCOME_FAILED
            response.message = f"the final output is {size} bytes, above the limit of {self.core.max_action_bytes} (max_action_bytes)"
            return
        verdict = await self.core.step(env_pb2.StepRequest(session_id=session_id, action=env_pb2.Action(text=run.output)))
        if verdict.status.code != common_pb2.ItemStatus.OK or not verdict.HasField("reward"):
            response.outcome = env_pb2.AGENT_OUTCOME_INFRA
            response.message = f"the verifier failed: {verdict.status.message or 'no reward in its reply'}"
            return
        response.reward = verdict.reward
        response.solved = verdict.info.solved
