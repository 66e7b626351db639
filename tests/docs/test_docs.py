"""The operator docs stay true: every setting documented, every link leads somewhere, the JSON
is JSON, the IAM policies allow what they say (checked by moto's IAM), the `aws` commands of
the S3-to-SQS page work (on moto), and the deployment files run commands that exist."""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from typer.main import get_command

from reflector.cli import app as cli_app
from reflector.settings import ConfigError, Settings, load_settings
from tests.docs.markdown import DOCS, REPO, anchors, fenced, links
from tests.recordings.conftest import REGION, aws_client, unique_name
from tests.recordings.test_storage import iam_enforced

DOC_PAGES = sorted(DOCS.glob("*.md"))
LINKED_PAGES = [*DOC_PAGES, REPO / "README.md"]
DEPLOY = REPO / "deploy"

# The names the examples use, replaced by the test's own.
EXAMPLE_BUCKET = "acme-reflector-recordings"
EXAMPLE_DERIVED = "acme-reflector-derived"
EXAMPLE_QUEUE_ARN = "arn:aws:sqs:eu-west-1:111122223333:reflector-recordings"


def test_the_pages_exist() -> None:
    names = {page.name for page in DOC_PAGES}
    assert {
        "README.md",
        "whereby-setup.md",
        "s3-and-iam.md",
        "s3-to-sqs.md",
        "troubleshooting.md",
        "deployment.md",
        "scaling.md",
        "configuration.md",
        "production.md",
        "retention.md",
        "webhooks.md",
        "metrics.md",
    } <= names


def test_every_setting_is_in_configuration_md() -> None:
    text = (DOCS / "configuration.md").read_text()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", text))
    missing = sorted(set(Settings.model_fields) - documented)
    assert not missing, f"docs/configuration.md lacks {missing}"


def test_the_index_links_every_page() -> None:
    linked = {target.split("#")[0] for target in links(DOCS / "README.md")}
    assert {page.name for page in DOC_PAGES} - {"README.md"} <= linked


@pytest.mark.parametrize("page", LINKED_PAGES, ids=lambda page: page.name)
def test_relative_links_lead_somewhere(page: Path) -> None:
    broken = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, fragment = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        if not destination.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
            broken.append(f"{target} (no such anchor in {destination.name})")
    assert not broken, f"{page.name}: {broken}"


def test_json_blocks_are_json() -> None:
    for page in DOC_PAGES:
        for block in fenced(page, "json"):
            try:
                json.loads(block)
            except ValueError as exc:
                pytest.fail(f"{page.name}: a ```json block is not JSON ({exc}):\n{block}")


def policy(page: str, name: str) -> dict[str, Any]:
    """The ```json block that follows `<!-- policy: name -->` in docs/<page>."""
    text = (DOCS / page).read_text()
    match = re.search(rf"<!-- policy: {name} -->\s*```json\n(.*?)^```", text, re.S | re.M)
    assert match, f"docs/{page} has no policy {name!r}"
    value: dict[str, Any] = json.loads(match.group(1))
    return value


def test_policies_are_well_formed() -> None:
    for page, name in [
        ("s3-and-iam.md", "whereby-writer"),
        ("s3-and-iam.md", "reflector-service"),
        ("s3-and-iam.md", "reflector-derived"),
        ("s3-to-sqs.md", "queue-access"),
    ]:
        document = policy(page, name)
        assert document["Version"] == "2012-10-17", name
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow", name
            assert statement["Action"], name
            assert statement["Resource"], name
            actions = statement["Action"]
            for action in [actions] if isinstance(actions, str) else actions:
                assert re.fullmatch(r"(s3|sqs|kms):[A-Z][A-Za-z]+", action), action


def _user_with(endpoint: str, document: dict[str, Any], **names: str) -> dict[str, str]:
    text = json.dumps(document)
    for example, real in names.items():
        text = text.replace(example, real)
    iam = aws_client("iam", endpoint)
    user = unique_name("docs")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="docs", PolicyDocument=text)
    key: dict[str, str] = iam.create_access_key(UserName=user)["AccessKey"]
    return key


def _client(service: str, endpoint: str, key: dict[str, str], region: str = REGION) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=key["AccessKeyId"],
        aws_secret_access_key=key["SecretAccessKey"],
    )


def _allowed(call: Any) -> bool:
    try:
        call()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("AccessDenied", "403") or "not authorized" in str(exc):
            return False
        raise
    return True


def test_the_iam_policies_allow_what_the_page_says(moto_server: str) -> None:
    bucket, derived = unique_name("recordings"), unique_name("derived")
    s3, sqs = aws_client("s3", moto_server), aws_client("sqs", moto_server)
    for name in (bucket, derived):
        s3.create_bucket(Bucket=name)
        s3.put_object(Bucket=name, Key="room-2026-11-28T12:00:05Z.mp4", Body=b"x")
    queue_url = sqs.create_queue(QueueName=unique_name("queue"))["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    sqs.send_message(QueueUrl=queue_url, MessageBody="{}")
    names = {EXAMPLE_BUCKET: bucket, EXAMPLE_DERIVED: derived, EXAMPLE_QUEUE_ARN: queue_arn}

    writer_key = _user_with(moto_server, policy("s3-and-iam.md", "whereby-writer"), **names)
    service_policy = policy("s3-and-iam.md", "reflector-service")
    # On AWS, DeleteMessageBatch is authorised by sqs:DeleteMessage; moto checks an action
    # named after the call, so the test grants that too.
    for statement in service_policy["Statement"]:
        if "sqs:DeleteMessage" in statement["Action"]:
            statement["Action"] = [*statement["Action"], "sqs:DeleteMessageBatch"]
    service_key = _user_with(moto_server, service_policy, **names)
    derived_key = _user_with(moto_server, policy("s3-and-iam.md", "reflector-derived"), **names)
    key = "room-2026-11-28T12:00:05Z.mp4"

    writer = _client("s3", moto_server, writer_key)
    service, service_sqs = (
        _client("s3", moto_server, service_key),
        _client("sqs", moto_server, service_key),
    )
    derived_s3 = _client("s3", moto_server, derived_key)
    with iam_enforced(moto_server):
        # Whereby's key writes and does nothing else.
        assert _allowed(lambda: writer.put_object(Bucket=bucket, Key="new.mp4", Body=b"x"))
        assert not _allowed(lambda: writer.get_object(Bucket=bucket, Key=key))
        assert not _allowed(lambda: writer.list_objects_v2(Bucket=bucket))
        assert not _allowed(lambda: writer.delete_object(Bucket=bucket, Key=key))
        # Reflector reads, lists, deletes and consumes the queue, and writes nothing.
        assert _allowed(lambda: service.head_object(Bucket=bucket, Key=key))
        assert _allowed(lambda: service.get_object(Bucket=bucket, Key=key))
        assert _allowed(lambda: service.list_objects_v2(Bucket=bucket))
        assert not _allowed(lambda: service.put_object(Bucket=bucket, Key="x.mp4", Body=b"x"))
        received: list[dict[str, Any]] = []
        assert _allowed(
            lambda: received.extend(
                service_sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1)["Messages"]
            )
        )
        handle = received[0]["ReceiptHandle"]
        assert _allowed(
            lambda: service_sqs.delete_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": "0", "ReceiptHandle": handle}]
            )
        )
        assert _allowed(lambda: service.delete_object(Bucket=bucket, Key=key))
        assert not _allowed(lambda: service.get_object(Bucket=derived, Key=key))
        # The derived bucket's policy: read, write, list, delete there, nothing elsewhere.
        assert _allowed(lambda: derived_s3.put_object(Bucket=derived, Key="t/a.json", Body=b"{}"))
        assert _allowed(lambda: derived_s3.get_object(Bucket=derived, Key="t/a.json"))
        assert _allowed(lambda: derived_s3.list_objects_v2(Bucket=derived))
        assert _allowed(lambda: derived_s3.delete_object(Bucket=derived, Key="t/a.json"))
        assert not _allowed(lambda: derived_s3.get_object(Bucket=bucket, Key="new.mp4"))


def _shell_script(page: Path) -> str:
    """The page's ```sh blocks, in order, as one script; a block right after
    `<!-- not run -->` is left out."""
    text = page.read_text()
    blocks = []
    for match in re.finditer(r"(<!-- not run -->\s*)?```sh\n(.*?)^```", text, re.S | re.M):
        if not match.group(1):
            blocks.append(match.group(2))
    return "\n".join(blocks)


def test_the_s3_to_sqs_commands_work(moto_server: str, tmp_path: Path) -> None:
    aws = shutil.which("aws")
    if aws is None:
        pytest.skip("the aws command line is not installed; the S3-to-SQS commands were not run")
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_ENDPOINT_URL": moto_server,
        # Anything that still tries to leave the machine fails here, at once.
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
        "NO_PROXY": "127.0.0.1",
        "no_proxy": "127.0.0.1",
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_PAGER": "",
    }
    script = _shell_script(DOCS / "s3-to-sqs.md")
    # The bucket comes from the S3 and IAM page; the moto server lives for the whole session.
    bucket = unique_name("acme")
    script = script.replace(EXAMPLE_BUCKET, bucket).replace(
        "QUEUE=reflector-recordings", f"QUEUE={unique_name('reflector')}"
    )
    # The aws CLI v1 sends SQS calls to AWS whatever AWS_ENDPOINT_URL says: name the endpoint
    # on every call.
    setup = 'aws() { command aws --endpoint-url "$AWS_ENDPOINT_URL" "$@"; }\n' + (
        f'aws s3api create-bucket --bucket "{bucket}" --region eu-west-1 '
        "--create-bucket-configuration LocationConstraint=eu-west-1 >/dev/null\n"
    )
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", setup + script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    out = done.stdout
    assert "AWS_PROCESS_RECORDING_QUEUE_URL=" in out
    assert "s3:TestEvent" in out
    assert '"eventName":"ObjectCreated:Put"' in out.replace(" ", "")
    assert "reflector-check.mp4" in out

    # What the commands built: a redrive policy and a notification filtered on .mp4.
    # The page works in eu-west-1.
    s3 = aws_client("s3", moto_server)
    sqs = _client(
        "sqs", moto_server, {"AccessKeyId": "testing", "SecretAccessKey": "testing"}, "eu-west-1"
    )
    [config] = s3.get_bucket_notification_configuration(Bucket=bucket)["QueueConfigurations"]
    assert config["Events"] == ["s3:ObjectCreated:*"]
    assert config["Filter"]["Key"]["FilterRules"] == [{"Name": "Suffix", "Value": ".mp4"}] or (
        config["Filter"]["Key"]["FilterRules"] == [{"Name": "suffix", "Value": ".mp4"}]
    )
    queue_url = sqs.get_queue_url(QueueName=config["QueueArn"].rsplit(":", 1)[1])["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    redrive = json.loads(attributes["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == 5
    assert redrive["deadLetterTargetArn"].endswith("-dead")
    access = json.loads(attributes["Policy"])
    [statement] = access["Statement"]
    assert statement["Principal"] == {"Service": "s3.amazonaws.com"}
    assert statement["Condition"]["ArnLike"]["aws:SourceArn"] == f"arn:aws:s3:::{bucket}"


# --- deployment files ------------------------------------------------------------------------


def _check_reflector_command(argv: list[str], where: str) -> None:
    """`reflector ARGS` parses: the subcommand and every option exist (nothing runs)."""
    group: Any = get_command(cli_app)  # a click Group (typer's own click, hence Any)
    with group.make_context("reflector", list(argv), resilient_parsing=False) as ctx:
        # Click 8.2+ keeps the subcommand's name in _protected_args (protected_args is gone).
        given = [*getattr(ctx, "_protected_args", []), *ctx.args]
        name, command, rest = group.resolve_command(ctx, given)
        assert command is not None, f"{where}: no command {name}"
        command.make_context(str(name), list(rest), parent=ctx)


def _unit_commands(unit: Path) -> list[list[str]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment, method-assign]
    parser.read(unit)
    commands = []
    for key in ("ExecStartPre", "ExecStart"):
        if parser.has_option("Service", key):
            argv = shlex.split(parser.get("Service", key).replace("\\\n", " "))
            commands.append(argv)
    return commands


def test_the_systemd_units_run_real_commands() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    assert {unit.name for unit in units} >= {
        "reflector.service",
        "reflector-worker.service",
        "reflector-worker@.service",
    }
    for unit in units:
        commands = _unit_commands(unit)
        assert commands, f"{unit.name} has no ExecStart"
        for argv in commands:
            program, *args = argv
            assert program.endswith("/reflector"), f"{unit.name}: {program}"
            # %i is the instance name (a queue): give the parser a real one.
            _check_reflector_command([a.replace("%i", "audio") for a in args], unit.name)


def test_the_compose_file_runs_real_commands() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "server", "worker"} <= set(services)
    for name, service in services.items():
        command = service.get("command")
        if command is None:
            continue
        argv = command if isinstance(command, list) else shlex.split(command)
        if argv and argv[0] == "reflector":
            _check_reflector_command(argv[1:], f"compose service {name}")
    assert services["server"]["env_file"] == "reflector.env"
    assert services["server"]["environment"]["DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_the_deploy_env_example_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name, raising=False)
    # As shipped it holds placeholders, which production mode refuses (the point: fill them
    # in); everything else in it must be valid.
    with pytest.raises(ConfigError, match="placeholder"):
        load_settings(_env_file=DEPLOY / "reflector.env.example")
    settings = load_settings(_env_file=DEPLOY / "reflector.env.example", ENVIRONMENT="development")
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.AWS_PROCESS_RECORDING_QUEUE_URL is not None


def test_the_pages_run_real_commands() -> None:
    """Every `reflector ...` command line in the pages' ```sh blocks parses."""
    seen = 0
    for page in DOC_PAGES:
        for block in fenced(page, "sh"):
            for line in block.replace("\\\n", " ").splitlines():
                match = re.search(r"(?:^\s*|/bin/)reflector\s+(.+)$", line)
                if match is None:
                    continue
                argv = shlex.split(match.group(1), comments=True)
                _check_reflector_command(argv, f"{page.name}: {line.strip()}")
                seen += 1
    assert seen >= 5
