"""Inside the add-on: the Supervisor API client (MQTT service lookup) and the hub's discovery
announcements (xiaozhi, wyoming), against a fake Supervisor on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import urlparse

import pytest

from xiaozhi_hub import supervisor as sup
from xiaozhi_hub.supervisor import MqttService, SupervisorClient, SupervisorError

from ..conftest import free_port
from ..wyoming.conftest import WyomingClient
from .conftest import MQTT, TOKEN, FakeSupervisor


async def test_the_mqtt_service_is_read_with_the_token(supervisor: FakeSupervisor):
    async with SupervisorClient(supervisor.url, TOKEN) as client:
        service = await client.mqtt_service()
    assert service == MqttService(host="core-mosquitto", port=1883, username="addons",
                                  password=MQTT["password"], ssl=False)
    assert MQTT["password"] not in repr(service) and MQTT["password"] not in service.describe()
    supervisor.mqtt = None
    async with SupervisorClient(supervisor.url, TOKEN) as client:
        assert await client.mqtt_service() is None             # no broker add-on installed


async def test_refusals_and_an_absent_supervisor_are_clear_errors(supervisor: FakeSupervisor):
    async with SupervisorClient(supervisor.url, "wrong-token") as client:
        with pytest.raises(SupervisorError, match="HTTP 401") as err:
            await client.mqtt_service()
    assert "wrong-token" not in str(err.value)
    async with SupervisorClient(f"http://127.0.0.1:{free_port()}", TOKEN, timeout=5) as client:
        with pytest.raises(SupervisorError, match="unreachable"):
            await client.discover("wyoming", {"uri": "tcp://127.0.0.1:1"})


@pytest.fixture
def in_addon(monkeypatch, supervisor: FakeSupervisor):
    monkeypatch.setenv(sup.TOKEN_ENV, TOKEN)
    monkeypatch.setattr(sup, "RETRY_FIRST", 0.05)
    return {"supervisor_url": supervisor.url, "announce_host": "127.0.0.1"}


async def announced(hub) -> None:
    assert hub.ctx.supervisor is not None
    async with asyncio.timeout(30):
        await hub.ctx.supervisor.wait_announced()


async def test_the_hub_announces_xiaozhi_and_wyoming(start_hub, supervisor: FakeSupervisor, in_addon, caplog):
    caplog.set_level(logging.DEBUG)
    supervisor.fail_discovery = 1                              # the Supervisor is not ready at first
    hub = await start_hub(addon=in_addon, wyoming={"enabled": True, "port": 0})
    await announced(hub)
    found = supervisor.discoveries()
    admin = hub.ctx.admin.current()                            # created at the hub's first start
    assert found["xiaozhi"] == {"host": "127.0.0.1", "port": hub.ctx.http_port, "hub_id": hub.ctx.hub_id,
                                "token": admin}
    assert admin and admin not in caplog.text
    assert found["wyoming"] == {"uri": f"tcp://127.0.0.1:{hub.ctx.wyoming.port}"}
    assert hub.ctx.supervisor.announced == {"xiaozhi": "uuid-xiaozhi", "wyoming": "uuid-wyoming"}
    assert "retrying" in caplog.text and TOKEN not in caplog.text
    # What Home Assistant's Wyoming flow does with the announcement: connect to the uri and describe.
    uri = urlparse(found["wyoming"]["uri"])
    async with WyomingClient(uri.port, host=uri.hostname) as c:
        info, _ = await c.describe()
    assert info.asr and info.tts


async def test_the_admin_token_goes_to_the_xiaozhi_announcement_only(start_hub, supervisor, in_addon, tmp_path,
                                                                     caplog):
    caplog.set_level(logging.DEBUG)
    data = tmp_path / "data"
    data.mkdir()
    (data / sup.ADMIN_TOKEN_FILE).write_text("admin-token-for-ha-0123456789\n")
    hub = await start_hub(addon=in_addon)                      # Wyoming off: only xiaozhi is announced
    await announced(hub)
    found = supervisor.discoveries()
    assert set(found) == {"xiaozhi"} and found["xiaozhi"]["token"] == "admin-token-for-ha-0123456789"
    assert "admin-token-for-ha" not in caplog.text


async def test_nothing_is_announced_outside_the_add_on_or_when_switched_off(start_hub, supervisor, monkeypatch):
    monkeypatch.delenv(sup.TOKEN_ENV, raising=False)
    hub = await start_hub(addon={"supervisor_url": supervisor.url})
    assert hub.ctx.supervisor is None
    monkeypatch.setenv(sup.TOKEN_ENV, TOKEN)
    hub = await start_hub(addon={"supervisor_url": supervisor.url, "discovery": False})
    assert hub.ctx.supervisor is None
    await asyncio.sleep(0.2)
    assert supervisor.requests == []
