"""The committed generated code matches the .proto files."""

from outrider.proto.generate import stale_files


def test_generated_code_is_up_to_date():
    assert stale_files() == [], "run `make proto` and commit the result"


def test_generated_modules_import_under_the_outrider_root():
    from outrider.proto.v1 import curriculum_pb2_grpc, env_pb2_grpc, policy_pb2_grpc, reward_pb2_grpc, trajectory_pb2

    assert trajectory_pb2.TrajectoryGroup.DESCRIPTOR.full_name == "outrider.v1.TrajectoryGroup"
    for module, service in [
        (policy_pb2_grpc, "PolicyService"),
        (env_pb2_grpc, "EnvService"),
        (reward_pb2_grpc, "RewardService"),
        (curriculum_pb2_grpc, "CurriculumService"),
    ]:
        assert hasattr(module, f"{service}Stub") and hasattr(module, f"add_{service}Servicer_to_server")
