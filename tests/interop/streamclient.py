"""Helpers for streaming tests: read the test pattern's barcode, compare colour bars,
declare libmoonlight-common-c's input functions, and run a stream and measure it.

Also a command-line client (`python streamclient.py ...`) so a stream can run inside
another network namespace.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import time

import numpy as np

CELL = 16
BITS = 64
SPEED = 4
# BGR of the eight colour bars, as host/src/source/test_pattern.rs draws them.
BARS = np.array(
    [[191, 191, 191], [0, 191, 191], [191, 191, 0], [0, 191, 0], [191, 0, 191], [0, 0, 191], [191, 0, 0], [40, 40, 40]],
    dtype=np.float64,
)

# Functions from moonlight-common-c's Limelight.h not in moonlight-python's own cdef.
INPUT_CDEF = """
int LiSendKeyboardEvent(short keyCode, signed char keyAction, signed char modifiers);
int LiSendMouseButtonEvent(signed char action, int button);
int LiSendScrollEvent(signed char scrollClicks);
int LiSendHScrollEvent(signed char scrollClicks);
int LiSendMousePositionEvent(short x, short y, short referenceWidth, short referenceHeight);
int LiSendMultiControllerEvent(short controllerNumber, short activeGamepadMask,
    int buttonFlags, unsigned char leftTrigger, unsigned char rightTrigger,
    short leftStickX, short leftStickY, short rightStickX, short rightStickY);
int LiSendControllerArrivalEvent(uint8_t controllerNumber, uint16_t activeGamepadMask, uint8_t type,
    uint32_t supportedButtonFlags, uint16_t capabilities);
"""

# moonlight-common-c's RTP audio counters (Limelight.h), read while the stream runs.
AUDIO_STATS_CDEF = """
typedef struct {
    uint32_t packetCountAudio;
    uint32_t packetCountFec;
    uint32_t packetCountFecRecovered;
    uint32_t packetCountFecFailed;
    uint32_t packetCountOOS;
    uint32_t packetCountInvalid;
    uint32_t packetCountFecInvalid;
} RTP_AUDIO_STATS;
const RTP_AUDIO_STATS* LiGetRTPAudioStats(void);
"""


def read_barcode(bgr: np.ndarray) -> tuple[int, int] | None:
    """(capture time in us, frame number), or None if any cell is unreadable."""
    g = bgr[: 2 * CELL, : BITS * CELL, 1].astype(np.float64)
    if g.shape != (2 * CELL, BITS * CELL):
        return None
    cells = g.reshape(2, CELL, BITS, CELL)[:, 4:12, :, 4:12].mean(axis=(1, 3))
    if np.any((cells > 64) & (cells < 192)):
        return None
    bits = (cells >= 192).astype(np.uint64)
    values = []
    for row in bits:
        v = 0
        for b in row:
            v = (v << 1) | int(b)
        values.append(v)
    return values[0], values[1]


def session_tag(session_id: str) -> int:
    """FNV-1a of the session id, as punktfunk-painter paints it in barcode row 2."""
    h = 0xCBF29CE484222325
    for b in session_id.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def read_row(bgr: np.ndarray, row: int) -> int | None:
    """Barcode row `row` (the painter paints its session tag in row 2), or None."""
    g = bgr[row * CELL : (row + 1) * CELL, : 64 * CELL, 1].astype(np.float64)
    if g.shape != (CELL, 64 * CELL):
        return None
    cells = g.reshape(CELL, 64, CELL)[4:12, :, 4:12].mean(axis=(0, 2))
    if np.any((cells > 64) & (cells < 192)):
        return None
    v = 0
    for bit in cells >= 192:
        v = (v << 1) | int(bit)
    return v


def expected_bars(number: int, width: int) -> np.ndarray:
    """One row of the bars of frame `number` (width x 3, BGR)."""
    offset = (number * SPEED) % width
    x = np.arange(width)
    return BARS[(((x + offset) % width) * 8) // width]


def bars_psnr(bgr: np.ndarray, number: int) -> float:
    """PSNR of the colour-bar region (below the barcode) against the source."""
    h, w = bgr.shape[:2]
    region = bgr[4 * CELL : h - CELL : 4].astype(np.float64)
    # Skip a few pixels at each bar edge: chroma subsampling blurs edges by design.
    row = expected_bars(number, w)
    edges = np.zeros(w, dtype=bool)
    for k in range(1, 8):
        e = ((k * w) // 8 - (number * SPEED) % w) % w
        edges[max(0, e - 4) : e + 4] = True
    mse = ((region - row[None, :, :]) ** 2)[:, ~edges].mean()
    return float("inf") if mse == 0 else 10 * math.log10(255.0**2 / mse)


def frames_for(client, seconds: float, until_ended: bool = False):
    """Decoded frames for `seconds`, then stops, even when frames stop coming.
    With `until_ended`, also stops once the host ended the stream (a termination).

    moonlight-python's frames() iterator waits for ever when the host stops sending
    (a crashed stream thread): a test must then fail on its assertions, not hang.
    """
    manager = client._stream_manager
    sub = manager.subscribe()
    deadline = time.monotonic() + seconds
    session = getattr(client, "_session", None)
    ended = getattr(session, "_connection_terminated", None) if until_ended else None
    try:
        while (left := deadline - time.monotonic()) > 0 and not (ended is not None and ended.is_set()):
            frame = sub.get(timeout=min(left, 1.0))
            if frame is not None:
                yield frame
    finally:
        manager.unsubscribe(sub)


def run_stream(client, seconds: float, width: int, height: int, fps: int, codec: str, bitrate: int = 10000, psnr_every: int = 10, app: str = "Desktop", until_ended: bool = False, press_key: int | None = None) -> dict:
    """Streams for `seconds` (or, with `until_ended`, until the host ends the stream
    first) and measures what was decoded. With `press_key` (a Windows virtual-key
    code), presses and releases that key once a second while streaming."""
    numbers: list[int] = []
    arrivals: list[float] = []
    unreadable = 0
    shapes: list[tuple[int, int]] = []
    psnrs: list[float] = []
    latencies: list[int] = []
    keyframes = 0
    tags: set[int | None] = set()
    with client.stream(app=app, width=width, height=height, fps=fps, bitrate_kbps=bitrate, codec=codec, record_audio=False):
        lib = None
        if press_key is not None:
            session = client._session
            session._ffi.cdef(INPUT_CDEF, override=True)
            lib = session._lib
        pressed_at = time.monotonic()
        for frame in frames_for(client, seconds, until_ended):
            now = time.monotonic()
            if lib is not None and now - pressed_at >= 1.0:
                lib.LiSendKeyboardEvent(press_key, 0x03, 0)
                lib.LiSendKeyboardEvent(press_key, 0x04, 0)
                pressed_at = now
            keyframes += bool(frame.is_keyframe)
            shapes.append(frame.data.shape[:2])
            code = read_barcode(frame.data)
            if code is None:
                unreadable += 1
            else:
                numbers.append(code[1])
                arrivals.append(now)
                latencies.append(int(frame.host_processing_latency_us))
                tags.add(read_row(frame.data, 2))
                if len(numbers) % psnr_every == 1:
                    psnrs.append(bars_psnr(frame.data, code[1]))
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    return {
        "numbers": numbers,
        "unreadable": unreadable,
        "psnr": psnrs,
        "max_gap": max(gaps) if gaps else None,
        "keyframes": keyframes,
        # The longest gap across which frames are missing (the network's doing, not
        # a host that fell behind on a busy machine).
        "max_loss_gap": max([g for g, a, b in zip(gaps, numbers, numbers[1:]) if b - a > 1], default=0.0),
        # Where the longest gap ended: seconds into the stream, and the frame number.
        "max_gap_at": [arrivals[gaps.index(max(gaps)) + 1] - arrivals[0], numbers[gaps.index(max(gaps)) + 1]] if gaps else None,
        "host_latency_tenths_ms": latencies,
        "shape": [height, width],
        "shapes": sorted({tuple(frame_shape) for frame_shape in shapes}),
        # Row 2 of the barcode: a session painter's tag (tests/painter), else noise.
        "tags": sorted(t for t in tags if t is not None),
        # When each readable frame was decoded (CLOCK_MONOTONIC, comparable across
        # processes): gaps at a moment the test knows of.
        "arrivals": arrivals,
    }


# moonlight-common-c's audio configurations (Limelight.h): channel count and WAVE mask.
AUDIO_MASKS = {2: 0x3, 6: 0x3F, 8: 0x63F}



class MultistreamDecoder:
    """libopus' multistream decoder, set up from the negotiated layout exactly as
    moonlight-common-c's clients set up theirs (opus_multistream_decoder_create with
    the announced streams, coupled streams and mapping): output channel i is
    Moonlight's channel i (FL FR C LFE BL BR SL SR). Same interface as
    moonlight-python's AudioDecoder."""

    def __init__(self, sample_rate: int = 48000, channels: int = 2, streams: int = 1,
                 coupled_streams: int = 1, mapping: list[int] | None = None) -> None:
        import ctypes
        import ctypes.util

        self._ct = ctypes
        lib = ctypes.CDLL(ctypes.util.find_library("opus") or "libopus.so.0")
        lib.opus_multistream_decoder_create.restype = ctypes.c_void_p
        lib.opus_multistream_decode_float.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_float), ctypes.c_int, ctypes.c_int]
        lib.opus_multistream_decoder_destroy.argtypes = [ctypes.c_void_p]
        mapping = list(range(channels)) if mapping is None else mapping
        err = ctypes.c_int()
        self._dec = lib.opus_multistream_decoder_create(
            ctypes.c_int32(sample_rate), channels, streams, coupled_streams,
            (ctypes.c_ubyte * channels)(*mapping[:channels]), ctypes.byref(err))
        if err.value != 0 or not self._dec:
            raise RuntimeError(f"opus_multistream_decoder_create failed: {err.value}")
        self._lib = lib
        self._pcm = (ctypes.c_float * (5760 * channels))()
        self.sample_rate = sample_rate
        self.channels = channels
        self.decode_errors = 0

    def decode(self, opus_data: bytes) -> list[np.ndarray]:
        n = self._lib.opus_multistream_decode_float(self._dec, opus_data, len(opus_data), self._pcm, 5760, 0)
        if n < 0:
            self.decode_errors += 1
            return []
        return [np.frombuffer(self._pcm, dtype=np.float32, count=n * self.channels).reshape(n, self.channels).copy()]

    def close(self) -> None:
        if self._dec:
            self._lib.opus_multistream_decoder_destroy(self._dec)
            self._dec = None

    def __del__(self) -> None:
        self.close()


@contextlib.contextmanager
def moonlight_audio(channels: int):
    """Makes moonlight-python ask for `channels` (2, 6 for 5.1, 8 for 7.1) and decode
    surround as Moonlight's own clients do.

    moonlight-python always asks for stereo, and it decodes surround with FFmpeg
    through an OpusHead of mapping family 1, which reorders the output from Vorbis
    order (channel 1 would be the centre, not front right) and crashes PyAV's FFmpeg
    on 7.1. Sound here goes through `MultistreamDecoder` instead (stereo too, as in
    moonlight-common-c's clients), so the channels a test reads are the channels a
    player hears.
    """
    import functools

    import moonlight_python
    import moonlight_python._stream_manager as stream_manager

    config = (AUDIO_MASKS[channels] << 16) | (channels << 8) | 0xCA
    original_config = moonlight_python.StreamConfig
    original_decoder = stream_manager.AudioDecoder

    def decoder(**kw):
        return MultistreamDecoder(**kw)

    moonlight_python.StreamConfig = functools.partial(original_config, audio_configuration=config)
    stream_manager.AudioDecoder = decoder
    try:
        yield
    finally:
        moonlight_python.StreamConfig = original_config
        stream_manager.AudioDecoder = original_decoder


def audio_for(client, seconds: float):
    """Decoded audio chunks for `seconds`, then stops, even when audio stops coming
    (client.audio() waits for ever then)."""
    manager = client._stream_manager
    sub = manager.subscribe_audio()
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            chunk = sub.get(timeout=min(left, 1.0))
            if chunk is not None:
                yield chunk
    finally:
        manager.unsubscribe_audio(sub)


def dominant_hz(pcm: np.ndarray, rate: int, window: float = 0.25) -> float:
    """The strongest frequency in one channel: the median over `window`-second
    stretches, so a stretch with a gap in it (a packet lost, a capture underrun on a
    busy machine) cannot pull the answer off the tone."""
    n = int(rate * window)
    peaks = []
    for start in range(0, len(pcm) - n + 1, n):
        seg = pcm[start : start + n] * np.hanning(n)
        spectrum = np.abs(np.fft.rfft(seg, 8 * n))
        peaks.append(np.fft.rfftfreq(8 * n, 1 / rate)[np.argmax(spectrum)])
    if not peaks:
        return 0.0
    return float(np.median(peaks))


def run_audio(client, seconds: float, pcm_path: str) -> dict:
    """Streams a small video with audio on for `seconds`, records the decoded PCM with
    each chunk's place on the host's timeline (Opus packet index), and reads the
    client library's own loss and FEC counters.

    The PCM goes to `pcm_path` (.npz: `pcm` samples x channels, `index` per chunk,
    `size` samples per chunk); the counters are returned.
    """
    import numpy as np

    chunks, indices = [], []
    rate = channels = 0
    with client.stream(app="Desktop", width=640, height=360, fps=30, bitrate_kbps=2000, codec="h264", record_audio=True):
        session = client._session
        session._ffi.cdef(AUDIO_STATS_CDEF)
        deadline = time.monotonic() + seconds
        for chunk in client.audio():
            chunks.append(chunk.data)
            indices.append(chunk.frame_index)
            rate, channels = chunk.sample_rate, chunk.channels
            if time.monotonic() > deadline:
                break
        stats = session._lib.LiGetRTPAudioStats()
        rtp = {name: int(getattr(stats, name)) for name in (
            "packetCountAudio", "packetCountFec", "packetCountFecRecovered", "packetCountFecFailed",
            "packetCountOOS", "packetCountInvalid", "packetCountFecInvalid")}
        loss = dict(session.audio_loss_stats)
        manager = client._stream_manager
        decode_errors = manager._audio_decoder.decode_errors if manager._audio_decoder else 0
    np.savez(pcm_path, pcm=np.concatenate(chunks), index=np.array(indices), size=np.array([len(c) for c in chunks]))
    return {"rate": rate, "channels": channels, "rtp": rtp, "client_loss": loss, "decode_errors": decode_errors}


def summarize(result: dict) -> dict:
    nums = result["numbers"]
    sent = nums[-1] - nums[0] + 1 if nums else 0
    return {
        "decoded": len(set(nums)),
        "sent": sent,
        "ratio": len(set(nums)) / sent if sent else 0.0,
        "increasing": all(b > a for a, b in zip(nums, nums[1:])),
        "min_psnr": min(result["psnr"]) if result["psnr"] else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config-dir", required=True)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=720)
    parser.add_argument("--fps", type=int, default=60)
    parser.add_argument("--codec", default="h264")
    parser.add_argument("--app", default="Desktop")
    parser.add_argument("--out", required=True)
    parser.add_argument("--press-key", type=lambda v: int(v, 0), help="press this virtual-key code once a second")
    parser.add_argument("--until-ended", action="store_true", help="stop streaming when the host ends the stream")
    parser.add_argument("--audio-pcm", help="record audio (a small video stream) to this .npz instead of measuring video")
    parser.add_argument("--pair-pin", help="pair with this PIN (typed on the host meanwhile) instead of streaming")
    args = parser.parse_args()
    from moonlight_python import MoonlightClient

    client = MoonlightClient(config_dir=args.config_dir)
    if args.pair_pin:
        from moonlight_python.discovery import connect_to_server

        server = connect_to_server(args.host, client._identity, args.port)
        client.pair(server=server, pin=args.pair_pin)
        with open(args.out, "w") as f:
            json.dump({"paired": True}, f)
        return
    client.connect(args.host, args.port)
    if args.audio_pcm:
        result = run_audio(client, args.seconds, args.audio_pcm)
    else:
        result = run_stream(client, args.seconds, args.width, args.height, args.fps, args.codec, app=args.app,
                            until_ended=args.until_ended, press_key=args.press_key)
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
