"""Import each compiled package and call real code of it: `ok NAME DETAIL` per package.

A library the loader cannot find fails the import (or the call that loads a codec), so the
image runs this as its default user and the test reads what it prints.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import traceback

os.environ["PSYCOPG_IMPL"] = "binary"  # the compiled psycopg-binary, never the ctypes one
os.environ["LOKY_MAX_CPU_COUNT"] = "1"  # joblib would run `cat` to count cores: no shell here


def check_numpy():
    import numpy as np

    return round(float(np.linalg.det(np.array([[1.0, 2.0], [3.0, 4.0]]))), 6)


def check_scipy():
    import numpy as np
    from scipy import linalg, special

    lu, piv = linalg.lu_factor(np.array([[4.0, 3.0], [6.0, 3.0]]))  # through scipy-openblas
    return (round(float(special.gamma(5)), 6), round(float(linalg.lu_solve((lu, piv),
                                                                          [1.0, 1.0])[0]), 6))


def check_pandas():
    import pandas as pd

    df = pd.DataFrame({"k": ["a", "b", "a"], "v": [1, 2, 3]})
    return df.groupby("k")["v"].sum().to_dict()


def check_pyarrow():
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pa.table({"x": [1, 2, 3]})
    buf = io.BytesIO()
    pq.write_table(table, buf, compression="zstd")
    back = pq.read_table(io.BytesIO(buf.getvalue()))
    return pc.sum(back["x"]).as_py()


def check_pillow():
    from PIL import Image

    sizes = []
    for fmt in ("PNG", "JPEG", "WEBP", "TIFF"):  # zlib, libjpeg, libwebp, libtiff
        out = io.BytesIO()
        Image.new("RGB", (16, 16), (200, 10, 10)).save(out, fmt)
        assert Image.open(io.BytesIO(out.getvalue())).size == (16, 16)
        sizes.append(fmt)
    return ",".join(sizes)


def check_lxml():
    from lxml import etree, html

    root = etree.fromstring(b"<a><b n='1'/><b n='2'/></a>")
    return (root.xpath("count(//b)"), html.fromstring("<p>hi</p>").text_content())


def check_psycopg():
    import psycopg

    assert psycopg.pq.__impl__ == "binary", psycopg.pq.__impl__
    return (psycopg.pq.__impl__, psycopg.pq.version())


def check_psycopg2():
    import psycopg2.extensions

    return psycopg2.extensions.libpq_version()


def check_cryptography():
    from cryptography.fernet import Fernet

    f = Fernet(Fernet.generate_key())
    return f.decrypt(f.encrypt(b"secret")).decode()


def check_bcrypt():
    import bcrypt

    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4))
    return bcrypt.checkpw(b"pw", hashed)


def check_argon2():
    from argon2 import PasswordHasher

    ph = PasswordHasher(time_cost=1, memory_cost=1024)
    return ph.verify(ph.hash("pw"), "pw")


def check_grpcio():
    from concurrent import futures

    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    server.stop(None)
    return port > 0


def check_orjson():
    import orjson

    return orjson.loads(orjson.dumps({"a": [1, 2]}))


def check_pydantic_core():
    import pydantic
    import pydantic_core

    class M(pydantic.BaseModel):
        n: int

    return (pydantic_core.__version__, M.model_validate({"n": "3"}).n)


def check_uvloop():
    import uvloop

    async def answer():
        await asyncio.sleep(0)
        return 42

    return uvloop.run(answer())


def check_httptools():
    import httptools

    got = {}

    class Proto:
        def on_url(self, url):
            got["url"] = url

    httptools.HttpRequestParser(Proto()).feed_data(b"GET /x HTTP/1.1\r\nHost: a\r\n\r\n")
    return got["url"].decode()


def check_greenlet():
    import greenlet

    return greenlet.greenlet(lambda: "switched").switch()


def check_matplotlib():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set_title("freetype")
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()[:4] == b"\x89PNG"


def check_sklearn():
    import numpy as np
    from sklearn.cluster import KMeans

    x = np.array([[0.0], [0.1], [10.0], [10.1]])
    labels = KMeans(n_clusters=2, n_init=1, random_state=0).fit(x).labels_  # OpenMP
    return len(set(labels.tolist()))


def check_shapely():
    from shapely.geometry import Point

    return round(Point(0, 0).buffer(1.0).area, 2)  # GEOS


def check_pyzmq():
    import zmq

    ctx = zmq.Context()
    a, b = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    a.bind("inproc://x")
    b.connect("inproc://x")
    a.send(b"ping")
    got = b.recv()
    a.close()
    b.close()
    ctx.term()
    return (zmq.zmq_version(), got.decode())


def check_regex():
    import regex

    return regex.match(r"(?<word>\p{L}+)", "héllo").group("word")


def check_msgpack():
    import msgpack

    assert msgpack.Packer.__module__ == "msgpack._cmsgpack", msgpack.Packer.__module__
    return msgpack.unpackb(msgpack.packb({"a": 1}))


def check_psutil():
    import psutil

    return (psutil.cpu_count() > 0, psutil.Process().username())


def check_zstandard():
    import zstandard

    assert zstandard.backend == "cext", zstandard.backend
    data = zstandard.ZstdCompressor().compress(b"x" * 1000)
    return len(zstandard.ZstdDecompressor().decompress(data))


def check_opencv():
    import cv2
    import numpy as np

    img = np.zeros((8, 8, 3), np.uint8)
    return [ext for ext in (".png", ".jpg", ".webp") if cv2.imencode(ext, img)[0]]


def check_duckdb():
    import duckdb

    return duckdb.sql("select sum(i) from range(10) t(i)").fetchall()[0][0]


def check_polars():
    import polars as pl

    df = pl.DataFrame({"k": ["a", "b", "a"], "v": [1, 2, 3]})
    return df.group_by("k").agg(pl.col("v").sum()).sort("k")["v"].to_list()


CHECKS = {name.removeprefix("check_"): fn for name, fn in sorted(globals().items())
          if name.startswith("check_")}


def main() -> None:
    failed = 0
    for name, fn in CHECKS.items():
        try:
            print(f"ok {name} {fn()!r}", flush=True)
        except Exception:
            failed += 1
            print(f"FAILED {name}\n{traceback.format_exc()}", flush=True)
    print(f"checked {len(CHECKS)} packages, {failed} failed", flush=True)
    sys.exit(1 if failed else 0)
