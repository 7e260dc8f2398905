"""A stock Moonlight client (moonlight-python over libmoonlight-common-c) pairs with the
host, lists its apps, launches and cancels, and stays paired across restarts."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import pytest
import requests

from conftest import HOST_BIN, Host, Moonlight


def test_pin_pairing_then_app_list(host: Host, moonlight):
    ml = moonlight()
    assert ml.server.app_version == "7.1.431.-1"
    assert ml.server.server_codec_mode_support & 0x1, "H.264 is always offered"
    assert not ml.server.paired

    error, pin = ml.pair(client_pin="4821", name="Living room TV")
    assert error is None, f"pairing failed: {error!r}\n{host.log()}"
    assert pin.returncode == 0, pin.stderr
    assert 'paired "Living room TV"' in pin.stdout

    apps = ml.client.apps()
    assert [a.name for a in apps][0] == "Desktop"
    assert apps[0].id == 1
    assert [name for name, _ in host.paired_clients()] == ["Living room TV"]
    # PairStatus is 1 over HTTPS for the paired certificate.
    assert "<PairStatus>1</PairStatus>" in ml.https("serverinfo").text


def test_wrong_pin_fails_clearly_and_leaves_no_record(host: Host, moonlight):
    from moonlight_python.exceptions import WrongPinError

    ml = moonlight()
    error, pin = ml.pair(client_pin="1111", host_pin="2222")
    assert isinstance(error, WrongPinError), repr(error)
    assert pin.returncode != 0
    assert "does not match" in pin.stderr
    assert host.paired_clients() == []
    # The client is not trusted: HTTPS requests are refused.
    reply = ml.https("applist")
    assert 'status_code="401"' in reply.text

    # The host is free again: the same client pairs with the right PIN.
    error, pin = ml.pair(client_pin="3333")
    assert error is None, repr(error)
    assert len(host.paired_clients()) == 1


def test_unpaired_client_is_refused_over_https(host: Host, moonlight):
    from moonlight_python.exceptions import HttpResponseError

    ml = moonlight()
    reply = ml.https("applist")
    assert reply.status_code == 200
    assert 'status_code="401"' in reply.text
    assert "not authorized" in reply.text
    with pytest.raises(HttpResponseError) as e:
        ml.http.get_app_list()
    assert e.value.status_code == 401
    for command in ("launch", "cancel", "appasset"):
        assert 'status_code="401"' in ml.https(command, "appid=1").text


def test_launch_returns_session_url_and_cancel_ends_it(host: Host, moonlight):
    ml = moonlight()
    error, _ = ml.pair()
    assert error is None, repr(error)
    key, iv = os.urandom(16), os.urandom(16)
    url = ml.http.launch_app(
        app_id=1, width=1280, height=720, fps=60, bitrate=10000, supported_video_formats=1,
        ri_aes_key=key, ri_aes_iv=iv, surroundaudioinfo=196610, launch_query_params="corever=1",
    )
    assert url == f"rtspenc://127.0.0.1:{host.port_base + 21}"
    # The launching client sees its app running; anyone else sees a free host (each
    # client streams in a session of its own).
    info = ml.https("serverinfo").text
    assert "<currentgame>1</currentgame>" in info and "SUNSHINE_SERVER_BUSY" in info, info
    info = host.serverinfo()
    assert "<currentgame>0</currentgame>" in info and "SUNSHINE_SERVER_FREE" in info

    # Launching the app it runs again re-attaches to its session (as a resume).
    again = ml.http.launch_app(
        app_id=1, width=1280, height=720, fps=60, bitrate=10000, supported_video_formats=1,
        ri_aes_key=key, ri_aes_iv=iv, surroundaudioinfo=196610, launch_query_params="corever=1",
    )
    assert again == url

    ml.http.quit_app()
    info = ml.https("serverinfo").text
    assert "<currentgame>0</currentgame>" in info and "SUNSHINE_SERVER_FREE" in info


def test_restart_keeps_pairing_and_certificate(host: Host, moonlight):
    ml = moonlight()
    error, _ = ml.pair(name="Phone")
    assert error is None, repr(error)
    cert_before = host.host_cert_pem()
    uniqueid_before = ml.server.unique_id

    host.restart()

    # A new client object on the same identity finds itself paired: connect() does not
    # pair again because HTTPS /applist succeeds.
    again = Moonlight(host, ml.config_dir)
    server = again.client.connect("127.0.0.1", host.port_base)
    assert server.unique_id == uniqueid_before
    assert [a.name for a in again.client.apps()][0] == "Desktop"
    assert host.host_cert_pem() == cert_before
    assert [n for n, _ in host.paired_clients()] == ["Phone"]


def test_unpairing_refuses_the_client(host: Host, moonlight):
    ml = moonlight()
    error, _ = ml.pair()
    assert error is None, repr(error)
    other = moonlight()
    error, _ = other.pair(client_pin="9876")
    assert error is None, repr(error)
    assert len(host.paired_clients()) == 2

    assert 'status_code="200"' in ml.https("unpair").text
    assert 'status_code="401"' in ml.https("applist").text
    # The other device is unaffected.
    assert [a.name for a in other.client.apps()][0] == "Desktop"
    assert len(host.paired_clients()) == 1


def test_a_new_request_from_one_address_replaces_its_old_one_and_pins_time_out(tmp_path):
    """One pending pairing per address (a device that starts over replaces its own
    attempt; other addresses each get theirs, see test_pairing_hold.py), and a PIN
    that never comes ends the attempt cleanly."""
    config = tmp_path / "host.toml"
    config.write_text("[pairing]\npin_timeout_secs = 3\n")
    from conftest import free_port_base

    h = Host(state_dir=tmp_path / "state", port_base=free_port_base(), config=config).start()
    try:
        from moonlight_python.exceptions import HttpResponseError

        first, second = Moonlight(h), Moonlight(h)
        errors: dict = {}

        def pair(name: str, ml: Moonlight, pin: str) -> None:
            try:
                ml.client.pair(server=ml.server, pin=pin)
            except Exception as e:
                errors[name] = (e, time.monotonic())

        t1 = threading.Thread(target=pair, args=("first", first, "1234"))
        t1.start()
        time.sleep(0.8)  # the first attempt is now waiting for its PIN
        started = time.monotonic()
        t2 = threading.Thread(target=pair, args=("second", second, "5678"))
        t2.start()
        # The first attempt ends at once, replaced by the second from the same address.
        t1.join(timeout=2)
        assert not t1.is_alive(), "the replaced attempt kept waiting"
        assert isinstance(errors.get("first", (None,))[0], HttpResponseError), repr(errors)
        # Nobody enters a PIN: the second attempt ends cleanly after the timeout.
        t2.join(timeout=15)
        assert not t2.is_alive()
        e, ended = errors["second"]
        assert isinstance(e, HttpResponseError) and e.status_code == 408, repr(e)
        assert ended - started >= 2.5
        assert h.paired_clients() == []
        out = h.pin("1234")
        assert out.returncode != 0 and "no pairing is waiting" in out.stderr
    finally:
        h.stop()


def test_pin_over_the_management_api_needs_a_login(host: Host, moonlight):
    from conftest import WebSession

    ml = moonlight()
    url = f"https://127.0.0.1:{host.web_port}/api/v1/pairing/pin"
    # Without a session (even from the box itself) the API refuses: PIN entry pairs a
    # device, so it is for the admin, like the uid-checked control socket.
    r = requests.post(url, json={"pin": "1234"}, verify=False, timeout=10)
    assert r.status_code == 401 and "log in" in r.json()["error"]
    web = WebSession(host).setup()
    r = web.request("POST", "/api/v1/pairing/pin", json={"pin": "1234"})
    assert r.status_code == 404 and "no pairing is waiting" in r.json()["error"]
    r = web.request("POST", "/api/v1/pairing/pin", json={"pin": "12"})
    assert r.status_code == 422
    # The CSRF token is required.
    r = web.http.post(url, json={"pin": "1234"}, verify=False, timeout=10)
    assert r.status_code == 403 and "CSRF" in r.json()["error"]

    result: dict = {}

    def enter() -> None:
        time.sleep(0.5)
        result["r"] = web.request("POST", "/api/v1/pairing/pin", json={"pin": "2468", "name": "Tablet"})

    t = threading.Thread(target=enter)
    t.start()
    ml.client.pair(server=ml.server, pin="2468")
    t.join()
    assert result["r"].status_code == 200, result["r"].text
    assert result["r"].json()["name"] == "Tablet"
    assert [n for n, _ in host.paired_clients()] == ["Tablet"]


def test_pin_command_without_a_running_host_is_a_clear_error(tmp_path):
    out = subprocess.run(
        [str(HOST_BIN), "pin", "1234", "--state-dir", str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode != 0
    assert "cannot reach the punktfunk service" in out.stderr
