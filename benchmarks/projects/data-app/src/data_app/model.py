"""The app's model: a linear fit on a small synthetic frame, kept as Arrow."""

from __future__ import annotations

import functools
import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from scipy import stats
from sklearn.linear_model import LinearRegression


@functools.cache
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(15)
    x = rng.uniform(0, 10, 200)
    df = pd.DataFrame({"x": x, "y": 3 * x + 2 + rng.normal(0, 0.5, x.size)})
    buf = io.BytesIO()  # a round trip through Parquet, as a real app would store it
    pq.write_table(pa.Table.from_pandas(df), buf)
    return pq.read_table(io.BytesIO(buf.getvalue())).to_pandas()


@functools.cache
def model() -> LinearRegression:
    df = frame()
    return LinearRegression().fit(df[["x"]], df["y"])


def predict(x: float) -> float:
    return float(model().predict(pd.DataFrame({"x": [x]}))[0])


def summary() -> dict:
    df = frame()
    slope = stats.linregress(df["x"], df["y"]).slope
    return {"rows": len(df), "slope": round(float(slope), 3),
            "coef": round(float(model().coef_[0]), 3)}
