"""10-bit streams (HEVC Main10, AV1 10-bit) to a real Moonlight client.

moonlight-python 0.3.0 maps its codec names to moonlight-common-c's
`supportedVideoFormats` through `config.CODEC_MAP` (h264, hevc, av1: 8-bit only), and
hands every decoded picture to numpy through `decoder.Decoder`. The tests add a codec
name whose formats include the 10-bit profile (what Moonlight's "HDR" switch does),
and record the decoder's pixel format and profile on the way. Everything else is the
library as shipped: it reads ServerCodecModeSupport from serverinfo, negotiates Main10
from it and the DESCRIBE reply, and writes `dynamicRangeMode:1` into its ANNOUNCE.
"""

from __future__ import annotations

import av
import pytest

from conftest import Host, Moonlight
from streamclient import run_stream, summarize

# moonlight-common-c's Limelight.h: VIDEO_FORMAT_* and SCM_*.
VIDEO_FORMAT_H265 = 0x0100
VIDEO_FORMAT_H265_MAIN10 = 0x0200
VIDEO_FORMAT_AV1_MAIN8 = 0x1000
VIDEO_FORMAT_AV1_MAIN10 = 0x2000
SCM_HEVC_MAIN10 = 0x0200
SCM_AV1_MAIN10 = 0x20000


@pytest.fixture
def paired(host: Host, moonlight):
    ml = moonlight()
    error, _ = ml.pair()
    assert error is None, repr(error)
    return ml


@pytest.fixture
def decoded_formats(monkeypatch) -> list[tuple[str, str | None]]:
    """(pixel format, profile) of every picture moonlight-python's decoder decodes."""
    import moonlight_python.decoder as decoder

    seen: list[tuple[str, str | None]] = []

    def decode(self, annex_b_data: bytes):
        # moonlight_python.decoder.Decoder.decode, recording what FFmpeg decoded.
        frames = []
        try:
            for frame in self._codec_ctx.decode(av.Packet(annex_b_data)):
                seen.append((frame.format.name, self._codec_ctx.profile))
                frames.append(frame.to_ndarray(format=self._output_format))
        except av.error.InvalidDataError:
            pass
        return frames

    monkeypatch.setattr(decoder.Decoder, "decode", decode)
    # PyAV's native "av1" decoder needs a hardware accelerator here; dav1d is what
    # Moonlight itself uses on most platforms (as in test_streaming.test_av1_720p30).
    monkeypatch.setitem(decoder.CODEC_NAMES, "av1", "libdav1d")
    return seen


def add_codec(monkeypatch, name: str, formats: int, decoder_name: str) -> None:
    import moonlight_python.config as config
    import moonlight_python.decoder as decoder

    monkeypatch.setitem(config.CODEC_MAP, name, formats)
    monkeypatch.setitem(decoder.CODEC_NAMES, name, decoder_name)


def check_video(host: Host, result: dict, min_ratio: float) -> dict:
    s = summarize(result)
    assert result["unreadable"] == 0, f"{result['unreadable']} decoded frames had an unreadable barcode"
    assert s["increasing"], "frame numbers must increase"
    assert s["ratio"] >= min_ratio, f"decoded {s['decoded']} of {s['sent']} frames sent\n{host.log()}"
    assert s["min_psnr"] is not None and s["min_psnr"] >= 30.0, f"colour bars PSNR {s['min_psnr']:.1f} dB"
    return s


def test_the_host_offers_10_bit_where_its_encoders_do(host: Host, paired: Moonlight):
    """serverinfo's Main10 bit and the app list's IsHdrSupported: x265 encodes 10-bit
    on Debian 12, so the host's probe keeps it and says so. SVT-AV1 1.4's 10-bit
    pictures keep stale blocks (host/src/encode/round_trip10.rs), so AV1 is offered
    at 8 bits only."""
    server = paired.client._server
    assert server.server_codec_mode_support & SCM_HEVC_MAIN10, hex(server.server_codec_mode_support)
    assert not server.server_codec_mode_support & SCM_AV1_MAIN10, hex(server.server_codec_mode_support)
    apps = paired.client.apps()
    assert apps and all(a.hdr_supported for a in apps), apps


def test_hevc_main10_720p30(host: Host, paired: Moonlight, monkeypatch, decoded_formats):
    add_codec(monkeypatch, "hevc-main10", VIDEO_FORMAT_H265 | VIDEO_FORMAT_H265_MAIN10, "hevc")
    result = run_stream(paired.client, 8, 1280, 720, 30, "hevc-main10", 8000)
    s = check_video(host, result, 0.95)
    # x265 at 10 bits on two shared cores, the client decoding beside it.
    assert s["sent"] >= 8 * 30 * 0.6, f"only {s['sent']} frames in 8 s at 30 fps\n{host.log()}"
    assert decoded_formats, "nothing decoded"
    assert {f for f, _ in decoded_formats} == {"yuv420p10le"}, decoded_formats[:5]
    assert {p for _, p in decoded_formats} == {"Main 10"}, decoded_formats[:5]
    assert "10-bit stream" in host.log()


def test_a_client_that_does_not_ask_for_10_bit_gets_8_bit(host: Host, paired: Moonlight, decoded_formats):
    result = run_stream(paired.client, 4, 1280, 720, 30, "hevc", 8000)
    check_video(host, result, 0.95)
    assert decoded_formats, "nothing decoded"
    assert {f for f, _ in decoded_formats} == {"yuv420p"}, decoded_formats[:5]
    assert {p for _, p in decoded_formats} == {"Main"}, decoded_formats[:5]


def test_a_client_asking_for_av1_10_bit_gets_8_bit_av1(host: Host, paired: Moonlight, monkeypatch, decoded_formats):
    """Without the AV1 Main10 bit the client negotiates AV1 Main 8-bit itself, and the
    host streams it."""
    add_codec(monkeypatch, "av1-10", VIDEO_FORMAT_AV1_MAIN8 | VIDEO_FORMAT_AV1_MAIN10, "libdav1d")
    result = run_stream(paired.client, 4, 1280, 720, 30, "av1-10", 6000)
    assert len(result["numbers"]) >= 30, f"{len(result['numbers'])} frames decoded\n{host.log()}"
    assert {f for f, _ in decoded_formats} == {"yuv420p"}, decoded_formats[:5]
    assert "10-bit stream" not in host.log()
