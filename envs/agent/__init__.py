"""Agent environments (EnvSpec kind `agent`, docs/agents.md): an agent program, in any
language, plays one episode in the sandbox against a captured policy session.

    async with GatewayBridge("127.0.0.1", policy_http_port) as bridge:
        run = await run_agent(sandbox, program, bridge, session_id="...", model="...", task={...})
        run.outcome, run.output

The program sees the usual sandbox (read-only /usr, private /tmp and /work, no host
paths, a network namespace with only loopback) plus: its folder read-only at /agent,
optionally the env service's Python packages (read-only, on PYTHONPATH: `import openai`
works), and an OpenAI base URL on 127.0.0.1 inside the sandbox that leads to the
session's gateway and nowhere else (forwarder.py relays it over a Unix socket that
`GatewayBridge` connects to the one gateway address it was given).
"""

from outrider.envs.agent.runner import (
    AGENT_DIR,
    GATEWAY_PORT,
    AgentOutcome,
    AgentRun,
    GatewayBridge,
    run_agent,
)

__all__ = ["AGENT_DIR", "GATEWAY_PORT", "AgentOutcome", "AgentRun", "GatewayBridge", "run_agent"]
