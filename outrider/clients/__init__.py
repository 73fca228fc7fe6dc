"""Typed, synchronous gRPC clients of Outrider's services, one module each.

    from outrider.clients.policy import PolicyClient          # Generate, ScoreTokens, UpdateWeights, ...
    from outrider.clients.env import EnvClient                # ListTasks, CreateSession, Step, ...
    from outrider.clients.reward import RewardClient          # Score, ScoreSteps
    from outrider.clients.curriculum import CurriculumClient  # NextTasks, ReportOutcomes, GetState

Every caller (rollout workers, the learner's weight sync, the curriculum's
env-service pools, `outrider train`/`eval`, the CLI, benches and tests) imports
them from here. A client knows the service's contract (`outrider.proto.v1`), never
its implementation: this layer sits below the services and the learner
(docs/architecture.md, Layers), so any component may call another through it.
Kept light: nothing is imported until a client module is.
"""
