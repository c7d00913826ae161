"""The admin token: every /api/ route refuses a request without it (auth on or off), the device paths
stay open, the file is private, `xiaozhi-hub token` prints and rotates it, and it is never shown."""

from __future__ import annotations

import asyncio
import logging
import stat

import pytest
from aiohttp import web

from xiaozhi_hub.__main__ import main
from xiaozhi_hub.net.http import CTX_KEY
from xiaozhi_hub.services.admin_token import AdminToken

from .conftest import Api

DEVICE = "aa:bb:cc:dd:ee:01"


def http_app(a: Api) -> web.Application:
    apps = [r.app for r in a.hub._runners if CTX_KEY in r.app]
    assert len(apps) == 1
    return apps[0]


def api_routes(a: Api) -> list[tuple[str, str]]:
    """(method, path) of every route under /api/ the running hub serves, device ids filled in."""
    out = []
    for route in http_app(a).router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter", "")
        if path.startswith("/api/") and route.method != "HEAD":
            out.append((route.method, path.replace("{device}", DEVICE)))
    return sorted(set(out))


@pytest.mark.parametrize("auth_enabled", [False, True])
async def test_every_api_route_refuses_a_missing_or_wrong_token(api, auth_enabled: bool) -> None:
    a = await api(auth={"enabled": auth_enabled, "tokens": ["a-static-device-token-0001"]})
    routes = api_routes(a)
    # The routes this hub must have (a route missing from the app would make the loop below vacuous).
    for expected in [("GET", "/api/devices"), ("GET", "/api/hub"), ("GET", "/api/events"), ("POST", "/api/say"),
                     ("POST", f"/api/devices/{DEVICE}/say"), ("POST", f"/api/devices/{DEVICE}/volume"),
                     ("POST", f"/api/devices/{DEVICE}/stop"), ("DELETE", f"/api/devices/{DEVICE}"),
                     ("GET", "/api/status"), ("GET", "/api/firmware"), ("POST", f"/api/devices/{DEVICE}/block")]:
        assert expected in routes
    for method, path in routes:
        for token in (None, "wrong-token", "a-static-device-token-0001", f"{a.token}x"):
            status, body = await a.call(method, path, {"text": "hi"}, token=token)
            assert status == 401, (method, path, token, status, body)
            assert "admin token" in body["error"]
    # With the token the same requests get past the gate (404: the device is unknown, 200 otherwise).
    status, _ = await a.call("GET", "/api/hub")
    assert status == 200
    status, body = await a.call("POST", f"/api/devices/{DEVICE}/say", {"text": "hi"})
    assert status == 404, body


async def test_device_paths_and_health_stay_open(api) -> None:
    a = await api(auth={"enabled": True})
    for path in ("/health", "/", "/xiaozhi/ota/"):
        async with a.session.get(f"{a.base}{path}") as r:
            assert r.status == 200, path
    async with a.session.get(f"{a.base}/xiaozhi/ota/download/none.bin") as r:
        assert r.status == 404                      # refused for not existing, not for a token
    async with a.session.post(f"{a.base}/xiaozhi/ota/activate", json={}) as r:
        assert r.status != 401


async def test_token_file_is_private_and_never_shown(api, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    a = await api()
    path = a.hub.settings.data_path / "admin_token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    token = a.token
    assert len(token) >= 32 and path.read_text().strip() == token
    async with a.session.get(f"{a.base}/") as r:
        page = await r.text()
    assert token not in page
    for path_ in ("/api/hub", "/api/devices", "/api/status"):
        _, body = await a.call("GET", path_)
        assert token not in str(body)
    await a.call("GET", "/api/hub", token="wrong")
    assert token not in caplog.text


async def test_rotation_takes_effect_without_a_restart(api, capsys) -> None:
    a = await api()
    old = a.token
    data_dir = str(a.hub.settings.data_path)
    assert main(["token", "--data-dir", data_dir]) == 0
    assert capsys.readouterr().out.strip() == old                   # prints the hub's token
    assert main(["token", "--rotate", "--data-dir", data_dir]) == 0
    new = capsys.readouterr().out.strip()
    assert new != old and len(new) >= 32
    status, _ = await a.call("GET", "/api/hub", token=old)
    assert status == 401
    status, _ = await a.call("GET", "/api/hub", token=new)
    assert status == 200
    assert stat.S_IMODE((a.hub.settings.data_path / "admin_token").stat().st_mode) == 0o600


def test_token_command_creates_the_file_and_keeps_it(tmp_path, capsys) -> None:
    assert main(["token", "--data-dir", str(tmp_path / "d")]) == 0
    first = capsys.readouterr().out.strip()
    assert main(["token", "--data-dir", str(tmp_path / "d")]) == 0
    assert capsys.readouterr().out.strip() == first
    assert stat.S_IMODE((tmp_path / "d" / "admin_token").stat().st_mode) == 0o600


def test_a_loosened_file_is_tightened_and_a_short_value_is_replaced(tmp_path) -> None:
    path = tmp_path / "admin_token"
    path.write_text("x" * 40)
    path.chmod(0o644)
    token = AdminToken(path)
    assert token.ensure() == "x" * 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    path.write_text("short")
    replaced = AdminToken(path).ensure()
    assert replaced != "short" and len(replaced) >= 32
    assert not AdminToken(path).allows(None) and not AdminToken(path).allows("Bearer ")
    assert AdminToken(path).allows(f"Bearer {replaced}") and AdminToken(path).allows(replaced)
    with pytest.raises(ValueError):
        token.set("too short")


async def test_the_say_command_talks_to_the_running_hub_with_the_token(api, capsys) -> None:
    a = await api()
    data_dir = str(a.hub.settings.data_path)
    loop = asyncio.get_running_loop()

    def cli(*argv: str) -> int:
        return main(["say", *argv, "--data-dir", data_dir, "--url", a.base])

    async with a.device() as dev:
        code = await loop.run_in_executor(None, cli, "Dinner is ready.", "--device", dev.device_id)
        assert code == 0
        assert capsys.readouterr().out.strip().startswith(f"{dev.device_id}: spoken (id ")
        assert any(t.sentences == ["Dinner is ready."] for t in dev.turns)
    assert await loop.run_in_executor(None, cli, "x", "--device", "aa:00:00:00:00:99") == 1
    assert "404" in capsys.readouterr().err
    assert await loop.run_in_executor(None, cli, "x") == 2                     # neither --device nor --all
    main(["token", "--rotate", "--data-dir", data_dir])
    capsys.readouterr()
    code = await loop.run_in_executor(None, cli, "Good night.", "--all", "--no-wait")
    assert code == 0 and f"{dev.device_id}: queued" in capsys.readouterr().out      # the new token works
