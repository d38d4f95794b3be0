#!/usr/bin/env python3
"""Writes the damaged checkpoints of this folder from good.safetensors (a checkpoint of
model.model.pbtxt written by `kiln train ... --save`). Run it from this folder; BadCheckpointTest
checks that each fails with the error in expected.txt."""
import json
import struct

good = open("good.safetensors", "rb").read()
n = struct.unpack("<Q", good[:8])[0]
header = json.loads(good[8:8 + n])
data = good[8 + n:]


def write(name, raw):
    open(name, "wb").write(raw)


def encode(h, d):
    text = json.dumps(h).encode()
    return struct.pack("<Q", len(text)) + text + d


def edited(fn):
    h = json.loads(json.dumps(header))
    fn(h)
    return encode(h, data)


write("truncated.safetensors", good[:1000])
write("truncated_data.safetensors", good[:1500])
write("empty.safetensors", b"")
write("not_safetensors.safetensors", b"this is a text file, not a checkpoint\n" * 4)
write("header_not_json.safetensors", struct.pack("<Q", 12) + b"{not json!!}" + data)
write("header_too_long.safetensors", struct.pack("<Q", 1 << 40) + good[8:])
write("offsets_out_of_range.safetensors",
      edited(lambda h: h["output/kernel"].update(data_offsets=[248, 4096])))
write("offsets_overlap.safetensors",
      edited(lambda h: h["hidden1/bias/momentum"].update(data_offsets=[8, 24])))
write("shape_size_mismatch.safetensors", edited(lambda h: h["hidden1/kernel"].update(shape=[6, 5])))
write("unknown_dtype.safetensors", edited(lambda h: h["hidden1/bias"].update(dtype="F17")))
write("wrong_fingerprint.safetensors",
      edited(lambda h: h["__metadata__"].update({"kiln.fingerprint": "0123456789abcdef"})))
write("wrong_shape.safetensors", edited(lambda h: h["hidden1/kernel"].update(shape=[4, 6])))
write("wrong_dtype.safetensors", edited(lambda h: h["output/bias"].update(dtype="I32")))


def drop(name):
    """Leaves tensor `name` out, header and bytes, as a checkpoint of another model would."""
    h, d = {"__metadata__": header["__metadata__"]}, b""
    for k, v in sorted((k, v) for k, v in header.items() if k not in ("__metadata__", name)):
        begin, end = v["data_offsets"]
        h[k] = dict(v, data_offsets=[len(d), len(d) + end - begin])
        d += data[begin:end]
    return encode(h, d)


write("missing_tensor.safetensors", drop("output/bias"))
