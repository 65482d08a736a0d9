"""The mnemo command line: --version, help, config, and exit code 2 with a clear
message on bad arguments and bad configuration."""

import os
import subprocess

from conftest import mnemo_bin


def run(args, env=None, timeout=60):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([mnemo_bin()] + args, env=e, capture_output=True, text=True,
                          timeout=timeout)


def test_version_prints_the_version():
    r = run(["--version"])
    assert r.returncode == 0
    assert r.stdout.startswith("mnemo ") and r.stdout.split()[1][0].isdigit()


def test_help_lists_the_commands():
    r = run(["help"])
    assert r.returncode == 0
    for word in ("serve", "config", "--version", "MNEMO_"):
        assert word in r.stdout


def test_unknown_command_is_exit_2():
    r = run(["frobnicate"])
    assert r.returncode == 2 and "frobnicate" in r.stderr


def test_unknown_argument_is_exit_2():
    r = run(["serve", "--port", "1"])
    assert r.returncode == 2 and "--port" in r.stderr


def test_config_prints_the_effective_configuration(tmp_path):
    f = tmp_path / "m.toml"
    f.write_text("[http]\nport = 8123\n")
    r = run(["config", "--config", str(f)], env={"MNEMO_STORAGE_DATA_DIR": "/tmp/elsewhere"})
    assert r.returncode == 0, r.stderr
    assert "8123" in r.stdout and "/tmp/elsewhere" in r.stdout


def test_bad_config_file_is_exit_2_with_file_line_col(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[http]\nprot = 1\n")
    r = run(["serve", "--config", str(f)])
    assert r.returncode == 2
    assert "bad.toml:2:" in r.stderr and "prot" in r.stderr


def test_missing_config_file_is_exit_2(tmp_path):
    r = run(["serve", "--config", str(tmp_path / "none.toml")])
    assert r.returncode == 2 and "none.toml" in r.stderr


def test_bad_environment_override_is_exit_2(tmp_path):
    r = run(["serve"], env={"MNEMO_HTTP_PORT": "seventy", "MNEMO_STORAGE_DATA_DIR":
                            str(tmp_path / "d")})
    assert r.returncode == 2 and "MNEMO_HTTP_PORT" in r.stderr


def test_port_in_use_fails_with_a_message(server_factory, tmp_path):
    s = server_factory()
    r = run(["serve"], env={"MNEMO_HTTP_PORT": str(s.port),
                            "MNEMO_STORAGE_DATA_DIR": str(tmp_path / "other")})
    assert r.returncode == 1
    assert str(s.port) in r.stderr
