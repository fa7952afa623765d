"""The Ansible deployment: syntax check, ansible-lint, and a template that matches the schema."""

from __future__ import annotations

import dataclasses
import grp
import json
import os
import pwd
import re
import stat
import subprocess
import sys
import tomllib
from pathlib import Path

from kiosk.config import SECTIONS, MqttSection, parse_config
from kiosk.decide.privacy import read_salt_file

REPO = Path(__file__).resolve().parents[1]
ANSIBLE = REPO / "deploy" / "ansible"
TEMPLATE = ANSIBLE / "roles" / "kiosk" / "templates" / "kiosk.toml.j2"
PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
LINT = Path(sys.executable).with_name("ansible-lint")


def _run(argv: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """Run an Ansible tool from the checkout with ``home`` as its ANSIBLE_HOME (caches,
    temporary files), so that it writes nothing into the checkout or the user's home."""
    return subprocess.run(
        argv,
        cwd=REPO,
        env={**os.environ, "ANSIBLE_HOME": str(home)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_playbook_passes_syntax_check(tmp_path: Path) -> None:
    result = _run(
        [
            str(PLAYBOOK),
            "--syntax-check",
            "-i",
            str(ANSIBLE / "inventory.example.yml"),
            str(ANSIBLE / "site.yml"),
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ansible_lint_passes_and_leaves_nothing_in_the_checkout(tmp_path: Path) -> None:
    result = _run([str(LINT), "--nocolor", str(ANSIBLE)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for project in (REPO, ANSIBLE):  # where ansible-lint puts its cache unless told otherwise
        assert not (project / ".ansible").exists(), f"ansible-lint left {project}/.ansible"


def _template_keys() -> list[tuple[str, str]]:
    """(section, key) for every key the template writes."""
    keys: list[tuple[str, str]] = []
    section = ""
    for line in TEMPLATE.read_text(encoding="utf-8").splitlines():
        if header := re.fullmatch(r"\[([a-z_]+)\]\s*", line):
            section = header.group(1)
        elif assignment := re.match(r"([a-z_][a-z0-9_]*)\s*=", line):
            keys.append((section, assignment.group(1)))
    return keys


def test_template_writes_only_keys_of_the_config_schema() -> None:
    keys = _template_keys()
    assert len(keys) >= 20  # the regex found the template's keys
    unknown = [
        f"{section}.{key}"
        for section, key in keys
        if section not in SECTIONS
        or key not in {f.name for f in dataclasses.fields(SECTIONS[section])}
    ]
    assert unknown == [], f"kiosk.toml.j2 writes keys kiosk.config does not know: {unknown}"
    assert len(set(keys)) == len(keys), "a key is written twice"


def test_the_play_gives_every_kiosk_of_a_site_the_same_salt_and_each_site_its_own(
    tmp_path: Path,
) -> None:
    hosts = {"a-1": "site-a", "a-2": "site-a", "b-1": "site-b"}
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        json.dumps(
            {
                "kiosks": {
                    "hosts": {
                        host: {
                            "kiosk_site": site,
                            "kiosk_config_dir": str(tmp_path / host),
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        }
                        for host, site in hosts.items()
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    for host in hosts:
        (tmp_path / host).mkdir()
    play = tmp_path / "salt.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "name": "Site salts",
                    "hosts": "kiosks",
                    "gather_facts": False,
                    "vars": {
                        "kiosk_subject_salt": "",
                        "kiosk_site_secrets_dir": str(tmp_path / "site-secrets"),
                        "kiosk_salt_owner": pwd.getpwuid(os.getuid()).pw_name,
                        "kiosk_salt_group": grp.getgrgid(os.getgid()).gr_name,
                    },
                    "tasks": [
                        {
                            "ansible.builtin.import_tasks": str(
                                ANSIBLE / "roles/kiosk/tasks/site_salt.yml"
                            )
                        }
                    ],
                    "handlers": [{"name": "Restart kiosk", "ansible.builtin.meta": "noop"}],
                }
            ]
        ),
        encoding="utf-8",
    )

    def salts() -> dict[str, str]:
        result = _run([str(PLAYBOOK), "-i", str(inventory), str(play)], tmp_path / "ansible")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "subject-salt" not in result.stdout or "censored" in result.stdout
        return {host: (tmp_path / host / "site-salt").read_text(encoding="utf-8") for host in hosts}

    first = salts()
    assert first["a-1"] == first["a-2"] != first["b-1"]
    assert all(len(salt.strip()) >= 40 for salt in first.values())
    assert stat.S_IMODE((tmp_path / "a-1" / "site-salt").stat().st_mode) == 0o640
    kept = tmp_path / "site-secrets" / "site-a" / "subject-salt"
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert salts() == first  # generated once per site: a later run keeps it
    assert read_salt_file(tmp_path / "a-1" / "site-salt") == first["a-1"].strip().encode()


def _rendered_mqtt(tmp_path: Path, broker: str) -> MqttSection:
    """The [mqtt] section of kiosk.toml as the role writes it for ``kiosk_mqtt_broker``."""
    out = tmp_path / f"kiosk-{broker}.toml"
    play = tmp_path / f"render-{broker}.yml"
    play.write_text(
        json.dumps(
            [
                {
                    "name": "Render kiosk.toml",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "vars_files": [str(ANSIBLE / "group_vars" / "all.yml")],
                    "vars": {
                        "kiosk_id": "k1",
                        "kiosk_site": "s1",
                        "kiosk_config_dir": str(tmp_path),
                        "kiosk_camera_decoder": "zxing-cpp",
                        "ansible_python_interpreter": sys.executable,
                    },
                    "tasks": [
                        {
                            "ansible.builtin.template": {
                                "src": str(TEMPLATE),
                                "dest": str(out),
                                "mode": "0644",
                            }
                        }
                    ],
                }
            ]
        ),
        encoding="utf-8",
    )
    argv = [str(PLAYBOOK), "-i", "localhost,", "-c", "local", "-e", f"kiosk_mqtt_broker={broker}"]
    argv.append(str(play))
    result = _run(argv, tmp_path / "ansible")
    assert result.returncode == 0, result.stdout + result.stderr
    return parse_config(tomllib.loads(out.read_text(encoding="utf-8"))).mqtt


def test_a_kiosk_on_the_nats_cluster_speaks_mqtt_3_1_1_and_subscribes_at_qos_0(
    tmp_path: Path,
) -> None:
    nats = _rendered_mqtt(tmp_path, "nats")
    assert (nats.protocol, nats.subscriptions_qos) == ("3.1.1", 0)
    site_broker = _rendered_mqtt(tmp_path, "mosquitto")
    assert (site_broker.protocol, site_broker.subscriptions_qos) == ("5", 1)
